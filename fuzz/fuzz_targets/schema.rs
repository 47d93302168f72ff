//! The schema lexer, parser and compiler: any text is either a schema or a `SchemaError`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        if let Ok(schema) = lookout_engine::schema::compile(source) {
            // A compiled schema prints, and the printed form compiles again.
            let printed = lookout_engine::schema::print(&schema);
            let _ = lookout_engine::schema::compile(&printed);
        }
    }
});
