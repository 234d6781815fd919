//! Runs parse + verify + normalise of the 68-field fixture IPN N times (the
//! work of `benches/verify.rs`), for counting instructions with
//! `perf stat -e instructions:u`: on a shared, busy machine the count is
//! stable where wall-clock time is not.
//!
//! `cargo run --release --example parse_cost -- [N]`

use ipnsync::providers::form;
use ipnsync::providers::lyra::{self, FormVerifier, Mode, SignAlgo};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/lyra-form/authorised.txt"
    ))
    .unwrap();
    let verifier = FormVerifier {
        mode: Mode::Test,
        algo: SignAlgo::HmacSha256,
        key: "1122334455667788",
        site_id: Some("12345678"),
    };
    let started = std::time::Instant::now();
    let mut keys = 0usize;
    for _ in 0..n {
        let f = form::parse(std::hint::black_box(&body)).unwrap();
        lyra::verify_form(&f, &verifier).unwrap();
        let notification = lyra::form_notification(&f).unwrap();
        keys += std::hint::black_box(notification.event_key()).len();
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "{n} IPNs parsed, verified and normalised: {per:.2} µs each (wall clock), {keys} key bytes"
    );
}
