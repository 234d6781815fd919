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
    // The decoder that defines the behaviour (and names the errors), as
    // a same-run baseline for the one-pass decoder `parse` uses.
    group.bench_function("parse_only_strict_decoder", |b| {
        b.iter(|| form::parse_strict(black_box(&body)).unwrap())
    });
    let parsed = form::parse(&body).unwrap();
    group.bench_function("verify_only", |b| {
        b.iter(|| lyra::verify_form(black_box(&parsed), &verifier).unwrap())
    });
    group.bench_function("normalise_only", |b| {
        b.iter(|| lyra::form_notification(black_box(&parsed)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, verify_form_ipn);
criterion_main!(benches);
