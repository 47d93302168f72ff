//! The text forms of tuples (`doc:1#viewer@user:2`) and attributes (`doc:1$public|boolean:true`):
//! any text parses or is a `ModelError`, and what parses prints back to text that parses to the
//! same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_engine::{Attribute, EntityRef, SubjectRef, Tuple};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tuple) = Tuple::parse(text) {
            assert_eq!(Tuple::parse(&tuple.to_string()).ok(), Some(tuple));
        }
        if let Ok(attribute) = Attribute::parse(text) {
            assert_eq!(
                Attribute::parse(&attribute.to_string()).ok(),
                Some(attribute)
            );
        }
        let _ = EntityRef::parse(text);
        let _ = SubjectRef::parse(text);
    }
});
