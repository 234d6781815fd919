//! Form IPN verification on arbitrary bodies: never panics, and never
//! accepts a body whose signature is not the one computed with the key.
#![no_main]

use ipnsync::providers::form;
use ipnsync::providers::lyra::{self, FormVerifier, Mode, SignAlgo};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "1122334455667788";

fuzz_target!(|data: &[u8]| {
    let Ok(f) = form::parse(data) else { return };
    for algo in [SignAlgo::Sha1, SignAlgo::HmacSha256] {
        let v = FormVerifier { mode: Mode::Test, algo, key: KEY, site_id: None };
        if lyra::verify_form(&f, &v).is_ok() {
            assert_eq!(f.get("signature"), Some(lyra::form_signature(&f, KEY, algo).as_str()));
            let _ = lyra::form_notification(&f);
        }
    }
});
