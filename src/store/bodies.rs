//! How raw request bodies are stored: the one place that encodes them on
//! the way in and decodes them on the way out.
//!
//! A stored body (`deliveries.body`, `bodies.body`) comes with a codec
//! column (`body_codec`): NULL for the verbatim bytes (every row written
//! before migration 11, and bodies that compression would not shrink),
//! [`ZSTD_DICT_1`] for zstd with dictionary 1, [`ZSTD_DICT_2`] for zstd
//! with dictionary 2 (what new rows get). Old rows are never rewritten:
//! the codec tells them apart, so upgrading costs nothing.
//!
//! Why zstd with a dictionary: a platform's notifications are the same
//! field names, the same merchant and shop values and the same formats
//! over and over; only a few hundred bytes differ from one to the next. A
//! dictionary made of such notifications lets the first bytes of every
//! body refer to it, where a general-purpose compressor would have to
//! learn the field names again in each 2 KB body (deflate: 1 904 → ≈ 950
//! bytes; zstd without dictionary: ≈ 900; with this dictionary: see
//! `docs/PERFORMANCE.md`). zstd is the reference implementation (the
//! `zstd` crate bundles it), decompression is a few microseconds.
//!
//! **Dictionary 1 is frozen.** It is `bodies_dict_1.bin`: the fixtures of
//! the four platforms concatenated (MPGS, Cybersource, Lyra REST, then the
//! Lyra form IPNs last because they are the commonest: zstd finds the
//! nearest matches cheapest), except the `authorised` form IPN that the
//! benchmarks vary, so they measure a body the dictionary has not seen.
//! Rows written with it must stay readable forever: a better dictionary
//! is a new file and a new codec number, never an edit of this one.
//!
//! **Dictionary 2 is frozen too.** It is `bodies_dict_2.bin`: dictionary
//! 1's content with zstd's entropy tables in front, learnt from the same
//! fixtures with their digits varied (`examples/body_dictionary.rs` makes
//! it, deterministically). With raw content only, zstd counted each body's
//! sequences and built their tables again, a third of the compression's
//! instructions; with the tables it reuses them (issue 18, tenth pass:
//! `cargo bench --bench verify -- store_body`, 1.22 → 0.73 µs and 124 →
//! 122 bytes per body).

use std::sync::OnceLock;

use thiserror::Error;
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// zstd with [`DICTIONARY_1`] (rows written before issue 18's tenth pass).
pub const ZSTD_DICT_1: i64 = 1;

/// zstd with [`DICTIONARY_2`]: what [`encode`] writes.
pub const ZSTD_DICT_2: i64 = 2;

/// The frozen dictionary of codec [`ZSTD_DICT_1`].
pub const DICTIONARY_1: &[u8] = include_bytes!("bodies_dict_1.bin");

/// The frozen dictionary of codec [`ZSTD_DICT_2`].
pub const DICTIONARY_2: &[u8] = include_bytes!("bodies_dict_2.bin");

/// zstd level. Negative levels skip the Huffman coding of literals, which
/// is most of the time on a 2 KB body that mostly refers to the dictionary
/// (the unique uuid, signature and amounts are the literals).
/// `cargo bench --bench verify -- store_body` compares it with level 3 in
/// the same run (issue 18, seventh pass: 1.49 against 3.29 µs, 124 against
/// 116 bytes). The request's task pays this before the writer sees the
/// body, and on a busy two-core machine those microseconds are worth more
/// than 8 bytes on disk. Decoding does not depend on the level: rows
/// written at level 3 read the same.
const LEVEL: i32 = -1;

/// Bodies are never larger than the intake limit (at most 16 MiB); a stored
/// body that claims to decode to more is corrupt.
const MAX_DECODED: usize = 16 * 1024 * 1024 + 1024;

#[derive(Debug, Error)]
pub enum BodyError {
    #[error("stored body has unknown codec {0}")]
    UnknownCodec(i64),
    #[error("stored body does not decode: {0}")]
    Corrupt(String),
}

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static DICT: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICT.get_or_init(|| EncoderDictionary::copy(DICTIONARY_2, LEVEL))
}

/// The prepared dictionary of a zstd codec; `None` for another codec.
fn decoder_dictionary(codec: i64) -> Option<&'static DecoderDictionary<'static>> {
    static DICT_1: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    static DICT_2: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    match codec {
        ZSTD_DICT_1 => Some(DICT_1.get_or_init(|| DecoderDictionary::copy(DICTIONARY_1))),
        ZSTD_DICT_2 => Some(DICT_2.get_or_init(|| DecoderDictionary::copy(DICTIONARY_2))),
        _ => None,
    }
}

/// A body ready to be stored: the bytes and their codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// `None`: `bytes` is the body verbatim.
    pub codec: Option<i64>,
}

/// Encodes bodies; one per thread that stores them (the writer), so the
/// compression context is allocated once and reused.
pub struct Encoder {
    compressor: zstd::bulk::Compressor<'static>,
}

impl Encoder {
    pub fn new() -> Result<Encoder, BodyError> {
        let compressor = zstd::bulk::Compressor::with_prepared_dictionary(encoder_dictionary())
            .map_err(|e| BodyError::Corrupt(e.to_string()))?;
        Ok(Encoder { compressor })
    }

    /// The stored form of `body`: compressed when that makes it smaller,
    /// else verbatim.
    pub fn encode(&mut self, body: &[u8]) -> Encoded {
        match self.compressor.compress(body) {
            Ok(z) if z.len() < body.len() => Encoded {
                bytes: z,
                codec: Some(ZSTD_DICT_2),
            },
            // A compression failure is not a reason to refuse a
            // notification: the verbatim body is always readable.
            _ => Encoded {
                bytes: body.to_vec(),
                codec: None,
            },
        }
    }
}

/// Encodes one body with this thread's encoder (created on first use and
/// kept: the writer thread allocates its compression context once).
pub fn encode(body: &[u8]) -> Encoded {
    thread_local! {
        static ENCODER: std::cell::RefCell<Option<Encoder>> = const { std::cell::RefCell::new(None) };
    }
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Encoder::new().ok();
        }
        match slot.as_mut() {
            Some(e) => e.encode(body),
            None => Encoded {
                bytes: body.to_vec(),
                codec: None,
            },
        }
    })
}

/// The original bytes of a stored body.
pub fn decode(codec: Option<i64>, stored: Vec<u8>) -> Result<Vec<u8>, BodyError> {
    match codec {
        None => Ok(stored),
        Some(codec) => {
            let dictionary = decoder_dictionary(codec).ok_or(BodyError::UnknownCodec(codec))?;
            let mut d = zstd::bulk::Decompressor::with_prepared_dictionary(dictionary)
                .map_err(|e| BodyError::Corrupt(e.to_string()))?;
            // The frame records the decoded size; the cap only guards
            // against a damaged frame asking for an absurd buffer.
            let capacity = zstd::zstd_safe::get_frame_content_size(&stored)
                .ok()
                .flatten()
                .map_or(MAX_DECODED, |n| (n as usize).min(MAX_DECODED));
            d.decompress(&stored, capacity)
                .map_err(|e| BodyError::Corrupt(e.to_string()))
        }
    }
}

/// The original bytes of delivery `id`'s body (inline or shared with the
/// other updates of a CMOS document); `None` once pruned or for no such
/// delivery.
pub fn read_delivery_body(
    conn: &crate::store::db::Connection,
    id: i64,
) -> Result<Option<Vec<u8>>, super::StoreError> {
    use crate::store::db::OptionalExtension;
    let stored: Option<(Option<Vec<u8>>, Option<i64>)> = conn
        .query_row(
            "SELECT COALESCE(d.body, b.body), CASE WHEN d.body IS NOT NULL THEN d.body_codec ELSE b.body_codec END
               FROM deliveries d LEFT JOIN bodies b ON b.id = d.body_id
              WHERE d.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match stored {
        Some((Some(bytes), codec)) => Ok(Some(decode(codec, bytes)?)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn every_fixture_round_trips() {
        let mut enc = Encoder::new().unwrap();
        for dir in ["lyra-form", "lyra-rest", "cybersource", "mpgs"] {
            for entry in
                std::fs::read_dir(format!("{}/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap()
            {
                let body = std::fs::read(entry.unwrap().path()).unwrap();
                let stored = enc.encode(&body);
                assert_eq!(decode(stored.codec, stored.bytes).unwrap(), body);
            }
        }
    }

    #[test]
    fn a_form_ipn_the_dictionary_has_not_seen_shrinks_to_less_than_half() {
        let body = fixture("lyra-form/authorised.txt");
        let stored = encode(&body);
        assert_eq!(stored.codec, Some(ZSTD_DICT_2));
        assert!(
            stored.bytes.len() * 2 < body.len(),
            "{} → {}",
            body.len(),
            stored.bytes.len()
        );
    }

    #[test]
    fn bodies_that_do_not_shrink_are_stored_verbatim() {
        for body in [&b""[..], b"x", b"\x8f\x01\xee"] {
            let stored = encode(body);
            assert_eq!(stored.codec, None);
            assert_eq!(stored.bytes, body);
            assert_eq!(decode(None, stored.bytes).unwrap(), body);
        }
    }

    #[test]
    fn unknown_codecs_and_damaged_frames_are_errors() {
        assert!(matches!(
            decode(Some(7), b"abc".to_vec()),
            Err(BodyError::UnknownCodec(7))
        ));
        let mut stored = encode(&fixture("lyra-form/refused.txt")).bytes;
        stored.truncate(stored.len() / 2);
        assert!(matches!(
            decode(Some(ZSTD_DICT_2), stored),
            Err(BodyError::Corrupt(_))
        ));
    }

    /// Rows written before dictionary 2 (codec 1, dictionary 1) still
    /// decode, and new rows are codec 2.
    #[test]
    fn rows_of_codec_1_still_decode() {
        for name in [
            "lyra-form/authorised.txt",
            "cybersource/cp-payment-review.json",
        ] {
            let body = fixture(name);
            let dictionary = zstd::dict::EncoderDictionary::copy(DICTIONARY_1, LEVEL);
            let old = zstd::bulk::Compressor::with_prepared_dictionary(&dictionary)
                .unwrap()
                .compress(&body)
                .unwrap();
            assert_eq!(decode(Some(ZSTD_DICT_1), old).unwrap(), body);
            let new = encode(&body);
            assert_eq!(new.codec, Some(ZSTD_DICT_2));
            assert_eq!(decode(new.codec, new.bytes).unwrap(), body);
        }
    }

    /// Dictionary 2 is dictionary 1's content with entropy tables in front
    /// (what `examples/body_dictionary.rs` makes).
    #[test]
    fn dictionary_2_is_dictionary_1_with_tables() {
        assert!(DICTIONARY_2.ends_with(DICTIONARY_1));
        assert_eq!(
            &DICTIONARY_2[..4],
            &0xEC30_A437_u32.to_le_bytes(),
            "zstd dictionary magic"
        );
        assert_eq!(&DICTIONARY_2[4..8], &2_u32.to_le_bytes(), "dictionary id");
    }

    /// Dictionary 2 is frozen: rows compressed with it must decode forever.
    #[test]
    fn dictionary_2_never_changes() {
        use sha2::{Digest, Sha256};
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_2)),
            "305ec267527689ba6700b9568d8b81d53390f15b8cd5c3fd52bb6647eb26c08b"
        );
    }

    /// Dictionary 1 is frozen: rows compressed with it must decode forever.
    #[test]
    fn dictionary_1_never_changes() {
        use sha2::{Digest, Sha256};
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_1)),
            "06b888c9e198fff196e6423d54b222a3d05eaae5f2cc2acad37d23ea2ef3ac02"
        );
    }
}
