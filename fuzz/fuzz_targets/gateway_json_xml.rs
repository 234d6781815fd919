//! The Cybersource payload scanner and JSON mapper, the Mastercard mapper
//! and the CMOS XML parser on arbitrary bytes: never a panic.
#![no_main]

use ipnsync::providers::cybersource::{self, cmos, SignedPart};
use ipnsync::providers::form::Form;
use ipnsync::providers::mpgs::{self, OrderRefField};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cybersource::payload_bytes(data);
    let _ = cybersource::webhook_notification(data, SignedPart::Payload, None);
    let _ = mpgs::notification(data, Some("fuzz"), None, OrderRefField::OrderId);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cmos::parse_document(text);
        let _ = cmos::notifications(&Form::from_pairs([("content", text)]), None);
    }
});
