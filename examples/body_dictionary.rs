//! Makes `src/store/bodies_dict_2.bin`, the dictionary of stored-body codec
//! 2 (`store::bodies::ZSTD_DICT_2`), and says how it compresses.
//!
//! Dictionary 2 is dictionary 1's content (`bodies_dict_1.bin`, the
//! platforms' fixtures) with zstd's entropy tables in front of it
//! (`ZDICT_finalizeDictionary`). Dictionary 1 is raw content: for every
//! body, zstd counted its sequences and built their FSE tables again, a
//! third of the compression's instructions (issue 18, tenth pass). With
//! tables in the dictionary it can reuse them.
//!
//! The tables are learnt from samples that look like traffic: every body
//! fixture of the four platforms (except the `authorised` form IPN, which
//! the benchmarks vary, as for dictionary 1) copied 50 times with its
//! digits replaced by pseudo-random ones from a fixed seed (amounts, ids,
//! dates, signatures). The output is deterministic: running this again
//! writes the same file, which `dictionary_2_never_changes` pins.
//!
//! ```sh
//! cargo run --release --example body_dictionary            # writes the file
//! cargo run --release --example body_dictionary -- --check # only compares
//! ```

use std::path::{Path, PathBuf};

const COPIES: usize = 50;
/// zstd's dictionary id of dictionary 2 (dictionary 1, raw content, has none).
const DICT_ID: u32 = 2;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let check = std::env::args().any(|a| a == "--check");
    let content = std::fs::read(root.join("src/store/bodies_dict_1.bin")).expect("dictionary 1");
    let (samples, sizes) = samples(&root);
    let dict = finalize(&content, &samples, &sizes);
    let target = root.join("src/store/bodies_dict_2.bin");
    println!(
        "dictionary 2: {} bytes ({} of content, tables learnt from {} samples)",
        dict.len(),
        content.len(),
        sizes.len()
    );
    if check {
        let frozen = std::fs::read(&target).expect("bodies_dict_2.bin");
        assert_eq!(
            frozen, dict,
            "bodies_dict_2.bin is not what this program makes"
        );
        println!("{} is what this program makes", target.display());
    } else {
        std::fs::write(&target, &dict).expect("write the dictionary");
        println!("wrote {}", target.display());
    }
    let body = std::fs::read(root.join("fixtures/lyra-form/authorised.txt")).expect("fixture");
    for (name, d) in [("dictionary 1", &content), ("dictionary 2", &dict)] {
        let prepared = zstd::dict::EncoderDictionary::copy(d, -1);
        let mut c = zstd::bulk::Compressor::with_prepared_dictionary(&prepared).expect("context");
        let z = c.compress(&body).expect("compress");
        let rounds = 100_000;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(c.compress(std::hint::black_box(&body)).expect("compress"));
        }
        println!(
            "{name}: authorised form IPN {} → {} bytes, {:.2} µs per body",
            body.len(),
            z.len(),
            t.elapsed().as_secs_f64() * 1e6 / rounds as f64
        );
    }
}

/// The body fixtures, each copied [`COPIES`] times with its digits varied.
fn samples(root: &Path) -> (Vec<u8>, Vec<usize>) {
    let mut files = Vec::new();
    for dir in ["mpgs", "cybersource", "lyra-rest", "lyra-form"] {
        for entry in std::fs::read_dir(root.join("fixtures").join(dir)).expect("fixtures") {
            let path = entry.expect("entry").path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if matches!(ext, "txt" | "json") && name != "authorised.txt" {
                files.push(path);
            }
        }
    }
    files.sort(); // read_dir's order is the file system's
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut samples, mut sizes) = (Vec::new(), Vec::new());
    for path in &files {
        let body = std::fs::read(path).expect("fixture");
        for _ in 0..COPIES {
            let start = samples.len();
            samples.extend(body.iter().map(|&b| {
                if b.is_ascii_digit() {
                    // xorshift64: deterministic, good enough to vary digits.
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    b'0' + (rng % 10) as u8
                } else {
                    b
                }
            }));
            sizes.push(samples.len() - start);
        }
    }
    (samples, sizes)
}

fn finalize(content: &[u8], samples: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = vec![0u8; content.len() + 64 * 1024];
    let params = zstd_sys::ZDICT_params_t {
        compressionLevel: 1,
        notificationLevel: 0,
        dictID: DICT_ID,
    };
    // SAFETY: every pointer and length describes a live buffer of that
    // size; `sizes` sums to `samples.len()`.
    let n = unsafe {
        zstd_sys::ZDICT_finalizeDictionary(
            out.as_mut_ptr().cast(),
            out.len(),
            content.as_ptr().cast(),
            content.len(),
            samples.as_ptr().cast(),
            sizes.as_ptr(),
            u32::try_from(sizes.len()).expect("sample count"),
            params,
        )
    };
    // SAFETY: a plain function of the returned code.
    assert_eq!(
        unsafe { zstd_sys::ZDICT_isError(n) },
        0,
        "ZDICT_finalizeDictionary failed"
    );
    out.truncate(n);
    out
}
