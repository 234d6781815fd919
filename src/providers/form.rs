//! Strict `application/x-www-form-urlencoded` decoding.
//!
//! Signature verification depends on decoding the body *exactly once* and
//! keeping every byte of every value, so this decoder refuses anything
//! ambiguous instead of guessing: a malformed `%XX` escape, bytes that are
//! not UTF-8 after decoding, or the same field name twice (PHP would keep the
//! last one, a signature check over "the fields received" would be ambiguous).

use thiserror::Error;

use names::{Id, COUNT as KNOWN};

/// Most fields a single form body may carry. A real IPN has about 60–90.
pub const MAX_FIELDS: usize = 512;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormError {
    #[error("bad percent-encoding in field {0}")]
    BadPercent(usize),
    #[error("field {0} is not valid UTF-8 after decoding")]
    InvalidUtf8(usize),
    #[error("field name {0:?} appears more than once")]
    DuplicateField(String),
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("empty field name")]
    EmptyName,
}

/// Decoded form fields in the order they were received.
///
/// All text lives in one buffer (`text`): a copy of the body (one
/// `memcpy`; a field that needs no decoding — most IPN fields — is a span
/// of it, never copied again), then the decoded names and values of the
/// fields that carry `%XX` or `+`. Fields are spans into it, and `by_name`
/// orders them by name once. So a 68-field IPN costs three allocations
/// instead of 137, a lookup is a binary search instead of a scan (the
/// shape rules and the normaliser look up dozens of fields), and the
/// signature walks the fields in the platform's order without sorting
/// again. Names are unique (the parser refuses duplicates; `from_pairs`
/// keeps the first of equal names for lookups).
///
/// The buffer is owned rather than borrowed from the body so that `Form`
/// keeps no lifetime: callers hold it past the request body (intake, the
/// provider plug-ins) and the copy costs ≈ 30 ns for a 2 KB IPN.
///
/// Fields whose name is a known Lyra name ([`names`]) also carry its
/// number: `known` finds them by number, and they are put in name order
/// by number (the numbers follow byte-wise order) rather than by sorting.
#[derive(Clone)]
pub struct Form {
    text: String,
    fields: Vec<Field>,
    /// Per known name, the index of the first field with that name, or
    /// [`NO_FIELD`].
    known: [u32; KNOWN],
    /// `(key, index into fields)`, sorted byte-wise by name, then by
    /// index (equal names keep their received order). `key` is the name's
    /// first 16 bytes as a big-endian number (zero-padded), so most
    /// comparisons are one integer comparison instead of a `memcmp` of two
    /// names that all start with `vads_`; equal keys fall back to the names.
    by_name: Vec<(u128, u32)>,
}

impl Default for Form {
    fn default() -> Self {
        Form {
            text: String::new(),
            fields: Vec::new(),
            known: [NO_FIELD; KNOWN],
            by_name: Vec::new(),
        }
    }
}

/// No field has this known name. Field indices are `u32`, as in
/// `by_name` (a parsed form has at most [`MAX_FIELDS`] fields, but
/// `from_pairs` takes any number).
const NO_FIELD: u32 = u32::MAX;
/// This field's name is not a known name.
const UNKNOWN: Id = Id::MAX;
const _: () = assert!(KNOWN < UNKNOWN as usize);

#[derive(Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
    /// The name's number in [`names`], or [`UNKNOWN`].
    id: Id,
}

/// The sort key of a name: its first 16 bytes, big-endian, zero-padded.
/// Consistent with byte-wise order: `key(a) < key(b)` implies `a < b`
/// (padding is 0, the smallest byte, and a name that ends first sorts
/// first), so keys decide every comparison they can tell apart.
fn key_of(name: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name[..n]);
    u128::from_be_bytes(bytes)
}

/// `key_of(text[start..end])`, reading 16 bytes at once when the buffer
/// holds them (the usual case: a name is followed by its value) and
/// masking off what follows the name.
fn key_at(text: &[u8], start: usize, end: usize) -> u128 {
    let len = end - start;
    match text.get(start..start + 16) {
        Some(window) if len < 16 => {
            let whole = u128::from_be_bytes(window.try_into().expect("16 bytes"));
            // len 0 would shift by 128: an empty name's key is 0.
            if len == 0 {
                0
            } else {
                whole & (u128::MAX << ((16 - len) * 8))
            }
        }
        Some(window) => u128::from_be_bytes(window.try_into().expect("16 bytes")),
        None => key_of(&text[start..end]),
    }
}

/// The big-endian key bits of `vads_` (the top 5 bytes of a key).
const VADS_KEY: u128 = u128::from_be_bytes(*b"vads_\0\0\0\0\0\0\0\0\0\0\0") >> 88;

impl Form {
    fn name_of(&self, f: &Field) -> &str {
        &self.text[f.name.0 as usize..f.name.1 as usize]
    }

    fn value_of(&self, f: &Field) -> &str {
        &self.text[f.value.0 as usize..f.value.1 as usize]
    }

    fn name_at(&self, index: u32) -> &str {
        self.name_of(&self.fields[index as usize])
    }

    /// Byte-wise by name, then by received position.
    fn cmp_entries(&self, a: &(u128, u32), b: &(u128, u32)) -> std::cmp::Ordering {
        a.0.cmp(&b.0)
            .then_with(|| self.name_at(a.1).cmp(self.name_at(b.1)))
            .then(a.1.cmp(&b.1))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let key = key_of(name.as_bytes());
        if let Some(id) = names::lookup(name.as_bytes(), key) {
            return self.known(id);
        }
        // The first of equal names (`partition_point`), as a scan would.
        let at = self
            .by_name
            .partition_point(|&(k, i)| k < key || (k == key && self.name_at(i) < name));
        match self.by_name.get(at) {
            Some(&(k, i)) if k == key && self.name_at(i) == name => {
                Some(self.value_of(&self.fields[i as usize]))
            }
            _ => None,
        }
    }

    /// The value of `name`, or `""` when absent.
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// [`Form::get`] of a known name, by its number (`names::id`).
    pub(crate) fn known(&self, id: Id) -> Option<&str> {
        match self.known[id as usize] {
            NO_FIELD => None,
            i => Some(self.value_of(&self.fields[i as usize])),
        }
    }

    /// [`Form::str`] of a known name, by its number.
    pub(crate) fn known_str(&self, id: Id) -> &str {
        self.known(id).unwrap_or("")
    }

    /// The fields with a known name, in received order: the name's
    /// number and the value.
    pub(crate) fn iter_known(&self) -> impl Iterator<Item = (Id, &str)> {
        self.fields
            .iter()
            .filter(|f| f.id != UNKNOWN)
            .map(|f| (f.id, self.value_of(f)))
    }

    /// The other fields, in received order: name and value.
    pub(crate) fn iter_unknown(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .filter(|f| f.id == UNKNOWN)
            .map(|f| (self.name_of(f), self.value_of(f)))
    }

    /// Fields in the order they were received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|f| (self.name_of(f), self.value_of(f)))
    }

    /// Fields sorted byte-wise by name (PHP `ksort` order); equal names
    /// keep their received order.
    pub fn iter_by_name(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_name.iter().map(|&(_, i)| {
            let f = &self.fields[i as usize];
            (self.name_of(f), self.value_of(f))
        })
    }

    /// The `vads_*` fields, sorted byte-wise by name: the fields the form
    /// signature covers, in its order. They are one run of the sorted
    /// fields, found by their keys without comparing names.
    pub fn iter_vads_by_name(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vads_by_name().iter().map(|&(_, i)| {
            let f = &self.fields[i as usize];
            (self.name_of(f), self.value_of(f))
        })
    }

    /// The values of [`Form::iter_vads_by_name`], as bytes (what the
    /// signature hashes).
    pub(crate) fn vads_values_by_name(&self) -> impl Iterator<Item = &[u8]> {
        let text = self.text.as_bytes();
        self.vads_by_name().iter().map(move |&(_, i)| {
            let (from, to) = self.fields[i as usize].value;
            &text[from as usize..to as usize]
        })
    }

    fn vads_by_name(&self) -> &[(u128, u32)] {
        let from = self.by_name.partition_point(|&(k, _)| k >> 88 < VADS_KEY);
        let to = from + self.by_name[from..].partition_point(|&(k, _)| k >> 88 == VADS_KEY);
        &self.by_name[from..to]
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Builds a form from already-decoded pairs (used by tools and tests).
    pub fn from_pairs<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut form = Form::default();
        for (n, v) in pairs {
            let name = form.push_text(&n.into());
            let value = form.push_text(&v.into());
            form.fields.push(Field {
                name,
                value,
                id: UNKNOWN,
            });
        }
        form.index();
        form
    }

    fn push_text(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, self.text.len() as u32)
    }

    /// Numbers the fields' names, fills `known` and builds `by_name`;
    /// returns whether two fields may share a name (`false`: they do not).
    ///
    /// Known names are put in order by number: a bit set of the numbers
    /// present, read highest bit first. Only the other names are sorted
    /// (by key, then by name), and the two runs merged. A known name seen
    /// twice makes it sort everything the general way (equal names then
    /// keep their received order, as in every other case).
    fn index(&mut self) -> bool {
        let text = self.text.as_bytes();
        let mut known = [NO_FIELD; KNOWN];
        // Bit `id % 64` of word `id / 64`: two words, not a `u128`
        // (cheaper to shift and to scan).
        let mut present = [0u64; 2];
        let mut repeated = false;
        // The unknown names' entries first, then room for the known ones.
        let mut by_name: Vec<(u128, u32)> = Vec::with_capacity(self.fields.len());
        for (i, f) in self.fields.iter_mut().enumerate() {
            let (from, to) = (f.name.0 as usize, f.name.1 as usize);
            let key = key_at(text, from, to);
            f.id = match names::lookup(&text[from..to], key) {
                Some(id) => {
                    if known[id as usize] == NO_FIELD {
                        known[id as usize] = i as u32;
                        present[id as usize / 64] |= 1 << (id % 64);
                    } else {
                        repeated = true;
                    }
                    id
                }
                None => {
                    by_name.push((key, i as u32));
                    UNKNOWN
                }
            };
        }
        self.known = known;
        if repeated {
            let mut all: Vec<(u128, u32)> = self
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (key_at(text, f.name.0 as usize, f.name.1 as usize), i as u32))
                .collect();
            self.sort_entries(&mut all);
            self.by_name = all;
            return true;
        }
        self.sort_entries(&mut by_name);
        let repeated = by_name
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && self.name_at(w[0].1) == self.name_at(w[1].1));
        // Merged from the back, in place: the known entries by
        // decreasing number, each after the unknown ones that sort after
        // it (known and unknown names differ: the order is strict).
        let mut unknown = by_name.len();
        let mut write = unknown + (present[0].count_ones() + present[1].count_ones()) as usize;
        by_name.resize(write, (0, 0));
        for (word, mut bits) in present.into_iter().enumerate().rev() {
            while bits != 0 {
                let bit = 63 - bits.leading_zeros() as usize;
                bits &= !(1 << bit);
                let id = word * 64 + bit;
                let entry = (names::KEYS[id], known[id]);
                while unknown > 0 && {
                    let other = &by_name[unknown - 1];
                    other.0 > entry.0
                        || (other.0 == entry.0
                            && self.cmp_entries(other, &entry) == std::cmp::Ordering::Greater)
                } {
                    unknown -= 1;
                    write -= 1;
                    by_name[write] = by_name[unknown];
                }
                write -= 1;
                by_name[write] = entry;
            }
        }
        self.by_name = by_name;
        repeated
    }

    /// Sorts entries byte-wise by name, then by index: integers first
    /// (an entry is `(key, index)`, so this is already the final order
    /// wherever keys differ); only runs of equal keys — names sharing
    /// their first 16 bytes — are put in name order after, by the names.
    /// Entries often arrive sorted: one pass checks it.
    fn sort_entries(&self, entries: &mut [(u128, u32)]) {
        if entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return;
        }
        entries.sort_unstable();
        let mut from = 0;
        while from < entries.len() {
            let key = entries[from].0;
            let to = from + entries[from..].partition_point(|e| e.0 == key);
            if to - from > 1 {
                entries[from..to].sort_unstable_by(|a, b| self.cmp_entries(a, b));
            }
            from = to;
        }
    }

    /// The first duplicate name in sorted order, if any.
    fn first_duplicate(&self) -> Option<&str> {
        self.by_name
            .windows(2)
            .find(|w| w[0].0 == w[1].0 && self.name_at(w[0].1) == self.name_at(w[1].1))
            .map(|w| self.name_at(w[1].1))
    }

    /// Encodes the fields back into a form body (`+` for spaces).
    pub fn encode(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.iter().collect();
        serde_urlencoded::to_string(pairs).expect("string pairs always encode")
    }
}

impl PartialEq for Form {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Form {}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Form")
            .field("fields", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// Decodes a form body strictly. An empty body is an empty form.
///
/// Two decoders share the work: [`parse_fast`] handles every well-formed
/// body whose raw bytes are UTF-8 (every real IPN) in one pass; whatever
/// it does not accept — errors, and the odd body whose raw bytes only
/// become UTF-8 once decoded — goes to [`parse_strict`], the decoder that
/// defines the behaviour and names the error. A property test
/// (`fast_decoder_agrees_with_strict`) holds the two together.
pub fn parse(body: &[u8]) -> Result<Form, FormError> {
    match parse_fast(body) {
        Some(form) => Ok(form),
        None => parse_strict(body),
    }
}

/// The reference decoder (the first single-buffer one): splits, decodes
/// into one buffer, checks UTF-8 over the whole text then at every field
/// boundary, sorts, refuses duplicates. It defines which bodies are
/// refused and with which error; [`parse`] only reaches it for bodies the
/// one-pass decoder did not accept.
pub fn parse_strict(body: &[u8]) -> Result<Form, FormError> {
    let mut form = Form {
        // Decoding never lengthens the text.
        text: String::with_capacity(body.len()),
        // A real IPN field is ≈ 28 bytes: no extra pass to count them.
        fields: Vec::with_capacity(body.len() / 16 + 1),
        known: [NO_FIELD; KNOWN],
        by_name: Vec::new(),
    };
    if body.is_empty() {
        return Ok(form);
    }
    // Decoded bytes go to `text` directly; UTF-8 is checked once over the
    // whole text, then at every field boundary (a character split between
    // a name and its value is valid once glued together, and refused).
    let mut text = std::mem::take(&mut form.text).into_bytes();
    for (index, pair) in body.split(|&b| b == b'&').enumerate() {
        if pair.is_empty() {
            // `a=1&&b=2` and a trailing `&` are harmless and common.
            continue;
        }
        if form.fields.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode_component(raw_name, index, &mut text)?;
        if name.0 == name.1 {
            return Err(FormError::EmptyName);
        }
        let value = decode_component(raw_value, index, &mut text)?;
        form.fields.push(Field {
            name,
            value,
            id: UNKNOWN,
        });
    }
    form.text = match String::from_utf8(text) {
        Ok(t) => t,
        Err(e) => return Err(first_invalid(body, e.utf8_error().valid_up_to(), &form)),
    };
    if let Some(at) = form.fields.iter().position(|f| {
        !form.text.is_char_boundary(f.name.1 as usize)
            || !form.text.is_char_boundary(f.value.1 as usize)
    }) {
        return Err(FormError::InvalidUtf8(pair_index(body, at)));
    }
    form.index();
    // Equal names are neighbours once sorted: O(n log n), not a scan per
    // field (bodies are hostile input).
    if let Some(name) = form.first_duplicate() {
        return Err(FormError::DuplicateField(name.to_owned()));
    }
    Ok(form)
}

/// The error for invalid UTF-8 at byte `at` of the decoded text: the
/// field (by its position among the body's `&`-separated parts, empty
/// parts counted) whose name or value holds it.
fn first_invalid(body: &[u8], at: usize, form: &Form) -> FormError {
    let field = form
        .fields
        .iter()
        .position(|f| (at as u32) < f.value.1)
        .unwrap_or(form.fields.len().saturating_sub(1));
    FormError::InvalidUtf8(pair_index(body, field))
}

/// The position among the body's `&`-separated parts (empty ones counted,
/// as the errors always did) of the `field`-th non-empty one.
fn pair_index(body: &[u8], field: usize) -> usize {
    body.split(|&b| b == b'&')
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .nth(field)
        .map_or(0, |(i, _)| i)
}

/// Appends the decoded `raw` to `out`; returns its span.
fn decode_component(raw: &[u8], index: usize, out: &mut Vec<u8>) -> Result<(u32, u32), FormError> {
    let start = out.len();
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        // Most IPN values need no decoding at all.
        out.extend_from_slice(raw);
    } else {
        decode_into(raw, out).map_err(|()| FormError::BadPercent(index))?;
    }
    Ok((start as u32, out.len() as u32))
}

/// Appends `raw` with `+` and `%XX` decoded; `Err` on a malformed escape.
fn decode_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex_value(b));
                let lo = raw.get(i + 2).and_then(|&b| hex_value(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(()),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

/// The known names, by number.
pub(crate) mod names;

/// The one-pass decoder.
mod fast;
use fast::parse_fast;

/// The single-buffer parser against a reference decoder, on every real
/// IPN fixture: same fields, same order, every lookup finds its value.
#[cfg(test)]
mod fixtures;

/// The one-pass decoder against the strict one and against
/// `serde_urlencoded`, on arbitrary bodies: whatever it accepts, the strict
/// decoder accepts with the same fields in the same orders (received and
/// by name) and the reference decoder reads the same pairs; whatever it
/// declines, the strict decoder refuses (or the raw body is not UTF-8).
#[cfg(test)]
mod agreement;
