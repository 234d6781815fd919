//! The one-pass decoder [`super::parse`] tries first ([`parse_fast`]): every
//! well-formed body of UTF-8 bytes, in one pass of eight bytes at a time.
//! Whatever it does not accept goes to [`super::parse_strict`].

use super::{decode_into, hex_value, Field, Form, KNOWN, MAX_FIELDS, NO_FIELD, UNKNOWN};

/// Eight copies of a byte.
const fn repeat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

const LOW7: u64 = repeat(0x7f);

/// `0x80` in each byte of `word` that is one of `&`, `=`, `%`, `+`, `0`
/// in every other byte. Exact (every set bit is a match): per byte, the
/// low seven bits XOR a separator plus `0x7f` sets bit 7 unless they
/// are equal, and never carries into the next byte; a byte with its own
/// bit 7 set (not ASCII) is no separator.
fn special_bytes(word: u64) -> u64 {
    let low = word & LOW7;
    let differs = |separator: u8| (low ^ repeat(separator)).wrapping_add(LOW7);
    !((differs(b'&') & differs(b'=') & differs(b'%') & differs(b'+')) | word | LOW7)
}

/// The one-pass decoder's state between separators.
struct Splitter<'b> {
    body: &'b [u8],
    text: String,
    fields: Vec<Field>,
    scratch: Vec<u8>,
    /// Where the current field starts.
    start: usize,
    /// Its first `=`, or `usize::MAX`.
    eq: usize,
    escaped_name: bool,
    escaped_value: bool,
}

impl Splitter<'_> {
    /// Takes the special byte at `at`; `None` when the body is not one
    /// the fast decoder accepts.
    fn special(&mut self, at: usize) -> Option<()> {
        match self.body[at] {
            b'&' => self.end_field(at),
            b'=' => {
                if self.eq == usize::MAX {
                    self.eq = at;
                }
                Some(())
            }
            // `%` or `+`.
            _ => {
                if self.eq == usize::MAX {
                    self.escaped_name = true;
                } else {
                    self.escaped_value = true;
                }
                Some(())
            }
        }
    }

    /// The field ending at `at` (an `&`, or the end of the body).
    fn end_field(&mut self, at: usize) -> Option<()> {
        let start = self.start;
        if at > start {
            if self.fields.len() == MAX_FIELDS {
                return None;
            }
            let (name_end, value_start) = if self.eq == usize::MAX {
                (at, at)
            } else {
                (self.eq, self.eq + 1)
            };
            if name_end == start {
                return None;
            }
            let body = self.body;
            let name = if self.escaped_name {
                decode_fast(&body[start..name_end], &mut self.text, &mut self.scratch)?
            } else {
                (start as u32, name_end as u32)
            };
            let value = if self.escaped_value {
                decode_fast(&body[value_start..at], &mut self.text, &mut self.scratch)?
            } else {
                (value_start as u32, at as u32)
            };
            self.fields.push(Field {
                name,
                value,
                id: UNKNOWN,
            });
        }
        self.start = at + 1;
        self.eq = usize::MAX;
        self.escaped_name = false;
        self.escaped_value = false;
        Some(())
    }
}

/// The one-pass decoder: `None` for anything that is not a well-formed
/// body of UTF-8 bytes (the caller then asks [`super::parse_strict`] why).
///
/// One pass over the bytes finds the separators and notes which names and
/// values need decoding; those that do not are spans of the body's copy.
/// The pass reads eight bytes at a time and visits only the bytes that
/// are `&`, `=`, `%` or `+` (about 150 of a 2 KB IPN). UTF-8 is checked
/// once over the raw body (then every span between ASCII separators is
/// UTF-8 too) and per decoded component.
pub(super) fn parse_fast(body: &[u8]) -> Option<Form> {
    let body_text = std::str::from_utf8(body).ok()?;
    // The body's copy, then room for decoded components (never longer
    // than their encoded form) without growing.
    let mut text = String::with_capacity(body.len() * 2);
    text.push_str(body_text);
    let mut split = Splitter {
        body,
        text,
        fields: Vec::with_capacity(body.len() / 16 + 1),
        scratch: Vec::new(),
        start: 0,
        eq: usize::MAX,
        escaped_name: false,
        escaped_value: false,
    };
    let mut words = body.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut special = special_bytes(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        while special != 0 {
            split.special(base + special.trailing_zeros() as usize / 8)?;
            special &= special - 1;
        }
        base += 8;
    }
    for (at, b) in words.remainder().iter().enumerate() {
        if matches!(b, b'&' | b'=' | b'%' | b'+') {
            split.special(base + at)?;
        }
    }
    // The end of the body acts as a final `&`.
    split.end_field(body.len())?;
    let mut form = Form {
        text: split.text,
        fields: split.fields,
        known: [NO_FIELD; KNOWN],
        by_name: Vec::new(),
    };
    if form.index() && form.first_duplicate().is_some() {
        return None;
    }
    Some(form)
}

/// Decodes `raw` and appends it to `text` when it is UTF-8 on its own.
/// A component of up to 128 bytes (all of them, in a real IPN) is
/// decoded on the stack; a longer one in `scratch`.
fn decode_fast(raw: &[u8], text: &mut String, scratch: &mut Vec<u8>) -> Option<(u32, u32)> {
    let mut stack = [0u8; 128];
    let decoded = match stack.get_mut(..raw.len()) {
        Some(out) => {
            let len = decode_to_slice(raw, out)?;
            &stack[..len]
        }
        None => {
            scratch.clear();
            decode_into(raw, scratch).ok()?;
            &scratch[..]
        }
    };
    let decoded = std::str::from_utf8(decoded).ok()?;
    let start = text.len() as u32;
    text.push_str(decoded);
    Some((start, text.len() as u32))
}

/// [`decode_into`] into `out`, as long as `raw` (decoding never
/// lengthens): its decoded length, `None` on a malformed escape.
fn decode_to_slice(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut i = 0;
    let mut len = 0;
    while i < raw.len() {
        out[len] = match raw[i] {
            b'+' => b' ',
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex_value(b))?;
                let lo = raw.get(i + 2).and_then(|&b| hex_value(b))?;
                i += 2;
                hi << 4 | lo
            }
            b => b,
        };
        i += 1;
        len += 1;
    }
    Some(len)
}
