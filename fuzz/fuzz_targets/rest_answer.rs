//! The REST IPN mapper on arbitrary (correctly signed) answers: never panics.
#![no_main]

use ipnsync::providers::form::Form;
use ipnsync::providers::lyra::{self, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|answer: &str| {
    let hash = lyra::rest_hash(answer, "pw");
    let f = Form::from_pairs([
        ("kr-hash", hash.as_str()),
        ("kr-hash-key", "password"),
        ("kr-answer", answer),
    ]);
    assert!(lyra::verify_rest(&f, "pw").is_ok());
    let _ = lyra::rest_notification(&f, Mode::Test, None);
});
