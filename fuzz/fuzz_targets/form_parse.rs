//! The strict form decoder on arbitrary bytes: never panics; whatever it
//! accepts re-encodes to the same fields.
#![no_main]

use ipnsync::providers::form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = form::parse(data) {
        let again = form::parse(f.encode().as_bytes()).expect("re-encoded form parses");
        assert_eq!(again, f);
    }
});
