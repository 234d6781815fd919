//! Parse + verify + normalise one realistic Lyra form IPN (68 fields,
//! HMAC-SHA-256), and compress its body for storage: the CPU work intake
//! does on the request's task before the commit.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ipnsync::providers::form;
use ipnsync::providers::lyra::{self, FormVerifier, Mode, SignAlgo};
use ipnsync::store::bodies;

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

/// The stored form of a body (`store::bodies`), at the level intake uses
/// and, in the same run, at level 3 (what it used before issue 18's
/// seventh pass). The fixture's uuid and signature are replaced, as each
/// real notification's are, so the literals are not in the dictionary.
fn store_body(c: &mut Criterion) {
    let body = String::from_utf8(fixture())
        .unwrap()
        .replace(
            "vads_trans_uuid=9b0c5a1f2e3d4c5b6a79881726354abc",
            "vads_trans_uuid=5e2a07c4d1f8936b0a4c7e21d95f3b68",
        )
        .replace(
            "signature=XyXJiY45NZTOymhAY4Dxp6cjKTmbrwopMT7deI6NzQM",
            "signature=Qm7t0Zc1pV9rK2yH4wLx8NdE6aJ3sUfB5oGiTnY0qRk",
        )
        .into_bytes();
    let mut group = c.benchmark_group("store_body");
    group.throughput(Throughput::Elements(1));
    let mut encoder = bodies::Encoder::new().unwrap();
    let stored = encoder.encode(&body);
    assert!(stored.codec.is_some() && stored.bytes.len() < body.len());
    group.bench_function("encode", |b| b.iter(|| encoder.encode(black_box(&body))));
    let level_3 = zstd::dict::EncoderDictionary::copy(bodies::DICTIONARY_2, 3);
    let mut at_level_3 = zstd::bulk::Compressor::with_prepared_dictionary(&level_3).unwrap();
    group.bench_function("encode_at_level_3", |b| {
        b.iter(|| at_level_3.compress(black_box(&body)).unwrap())
    });
    // Codec 1 (dictionary 1, raw content: zstd builds its tables per body),
    // what new rows used before issue 18's tenth pass.
    let dictionary_1 = zstd::dict::EncoderDictionary::copy(bodies::DICTIONARY_1, -1);
    let mut with_dictionary_1 =
        zstd::bulk::Compressor::with_prepared_dictionary(&dictionary_1).unwrap();
    group.bench_function("encode_with_dictionary_1", |b| {
        b.iter(|| with_dictionary_1.compress(black_box(&body)).unwrap())
    });
    group.finish();
    println!(
        "store_body: {} bytes stored as {} (level 3: {}; dictionary 1: {})",
        body.len(),
        stored.bytes.len(),
        at_level_3.compress(&body).unwrap().len(),
        with_dictionary_1.compress(&body).unwrap().len()
    );
}

criterion_group!(benches, verify_form_ipn, store_body);
criterion_main!(benches);
