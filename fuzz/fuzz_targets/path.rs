//! The path validator: never panics, and what it accepts is a well-formed path whose
//! parent and name put back together give the path again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zabkeeper_proto::path;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = std::str::from_utf8(data) else {
        return;
    };
    for sequential in [false, true] {
        if path::validate(p, sequential).is_ok() && !sequential {
            assert!(p.starts_with('/'), "{p:?}");
            if p != "/" {
                assert!(!p.ends_with('/'), "{p:?}");
                assert!(!p.contains("//"), "{p:?}");
                let (parent, name) = (path::parent(p), path::name(p));
                assert_eq!(path::join(parent, name), p);
                assert!(path::validate(parent, false).is_ok(), "parent of {p:?}");
            }
        }
    }
});
