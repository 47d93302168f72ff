//! Tests.
#[test]
fn scratch_cel() {
    for src in ["1 +", "a >\n  ", "", "a > 1 &&\n b <", "{'a': }", "'abc\n"] {
        match cel::Program::compile(src) {
            Ok(_) => println!("{src:?} ok"),
            Err(e) => { for x in &e.errors { println!("{src:?} -> {:?} {}", x.pos, x.msg); } }
        }
    }
    fn ss<T: Send + Sync>() {}
    ss::<cel::Program>();
}
#[test]
fn scratch_cel_deep() {
    for n in [40usize, 47, 100, 300] {
        let src = format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let r = cel::Program::compile(&src);
        println!("parens {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
        let src = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let r = cel::Program::compile(&src);
        println!("lists {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
    }
    for n in [1000usize, 10000, 100000] {
        let src = format!("1{}", " + 1".repeat(n));
        let r = cel::Program::compile(&src);
        println!("plus {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
        let src = format!("a{}", ".b".repeat(n));
        let r = cel::Program::compile(&src);
        println!("dots {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
        let src = format!("{}a", "!".repeat(n));
        let r = cel::Program::compile(&src);
        println!("bang {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
        let src = format!("{}a", "-".repeat(n));
        let r = cel::Program::compile(&src);
        println!("neg {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
        let src = format!("a{}", " ? a : a".repeat(n));
        let r = cel::Program::compile(&src);
        println!("tern {n}: {:?}", r.as_ref().err().map(|e| e.to_string().chars().take(100).collect::<String>()));
    }
}
