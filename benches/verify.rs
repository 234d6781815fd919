//! Parse + verify + normalise one realistic Lyra form IPN (68 fields,
//! HMAC-SHA-256), the CPU work intake does before the commit.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ipnsync::providers::form;
use ipnsync::providers::lyra::{self, FormVerifier, Mode, SignAlgo};

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/lyra-form/authorised.txt"
    ))
    .unwrap()
}

fn verify_form_ipn(c: &mut Criterion) {
    let body = fixture();
    let verifier = FormVerifier {
        mode: Mode::Test,
        algo: SignAlgo::HmacSha256,
        key: "1122334455667788",
        site_id: Some("12345678"),
    };
    let mut group = c.benchmark_group("lyra_form");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_verify_normalise_68_fields", |b| {
        b.iter(|| {
            let f = form::parse(black_box(&body)).unwrap();
            lyra::verify_form(&f, &verifier).unwrap();
            let n = lyra::form_notification(&f).unwrap();
            black_box(n.event_key())
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| form::parse(black_box(&body)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, verify_form_ipn);
criterion_main!(benches);
