//! Strict `application/x-www-form-urlencoded` decoding.
//!
//! Signature verification depends on decoding the body *exactly once* and
//! keeping every byte of every value, so this decoder refuses anything
//! ambiguous instead of guessing: a malformed `%XX` escape, bytes that are
//! not UTF-8 after decoding, or the same field name twice (PHP would keep the
//! last one, a signature check over "the fields received" would be ambiguous).

use thiserror::Error;

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
/// Built in one pass over the body: every decoded name and value is
/// appended to one buffer (`text`), fields are spans into it, and `by_name`
/// orders them by name once. So a 68-field IPN costs three allocations
/// instead of 137, a lookup is a binary search instead of a scan (the
/// shape rules and the normaliser look up dozens of fields), and the
/// signature walks the fields in the platform's order without sorting
/// again. Names are unique (the parser refuses duplicates; `from_pairs`
/// keeps the first of equal names for lookups).
#[derive(Clone, Default)]
pub struct Form {
    text: String,
    fields: Vec<Field>,
    /// Indices into `fields`, sorted byte-wise by name.
    by_name: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

impl Form {
    fn name_of(&self, f: &Field) -> &str {
        &self.text[f.name.0 as usize..f.name.1 as usize]
    }

    fn value_of(&self, f: &Field) -> &str {
        &self.text[f.value.0 as usize..f.value.1 as usize]
    }

    fn sorted_name(&self, i: usize) -> &str {
        self.name_of(&self.fields[self.by_name[i] as usize])
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        // The first of equal names (`partition_point`), as a scan would.
        let at = self
            .by_name
            .partition_point(|&i| self.name_of(&self.fields[i as usize]) < name);
        (at < self.by_name.len() && self.sorted_name(at) == name)
            .then(|| self.value_of(&self.fields[self.by_name[at] as usize]))
    }

    /// The value of `name`, or `""` when absent.
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
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
        self.by_name.iter().map(|&i| {
            let f = &self.fields[i as usize];
            (self.name_of(f), self.value_of(f))
        })
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
            form.fields.push(Field { name, value });
        }
        form.index();
        form
    }

    fn push_text(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, self.text.len() as u32)
    }

    /// Sorts `by_name` (stable: equal names keep their received order).
    fn index(&mut self) {
        let mut by_name: Vec<u32> = (0..self.fields.len() as u32).collect();
        by_name.sort_by(|&a, &b| {
            self.name_of(&self.fields[a as usize])
                .cmp(self.name_of(&self.fields[b as usize]))
        });
        self.by_name = by_name;
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
pub fn parse(body: &[u8]) -> Result<Form, FormError> {
    let mut form = Form {
        // Decoding never lengthens the text.
        text: String::with_capacity(body.len()),
        // A real IPN field is ≈ 28 bytes: no extra pass to count them.
        fields: Vec::with_capacity(body.len() / 16 + 1),
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
        form.fields.push(Field { name, value });
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
    reject_duplicates(&form)?;
    Ok(form)
}

/// Equal names are neighbours once sorted: O(n log n), not a scan per
/// field (bodies are hostile input).
fn reject_duplicates(form: &Form) -> Result<(), FormError> {
    match (1..form.by_name.len()).find(|&i| form.sorted_name(i - 1) == form.sorted_name(i)) {
        Some(i) => Err(FormError::DuplicateField(form.sorted_name(i).to_owned())),
        None => Ok(()),
    }
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
                        _ => return Err(FormError::BadPercent(index)),
                    }
                    i += 3;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
    }
    Ok((start as u32, out.len() as u32))
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
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_once() {
        let form = parse(b"a=Jean+Dupont&b=abc%2Bdef&c=%2541&d=").unwrap();
        assert_eq!(form.get("a"), Some("Jean Dupont"));
        assert_eq!(form.get("b"), Some("abc+def"));
        assert_eq!(form.get("c"), Some("%41"), "decoded exactly once");
        assert_eq!(form.get("d"), Some(""));
        assert_eq!(form.len(), 4);
    }

    #[test]
    fn keeps_utf8_and_field_without_equals() {
        let form = parse("n=%C3%A9t%C3%A9&flag".as_bytes()).unwrap();
        assert_eq!(form.get("n"), Some("été"));
        assert_eq!(form.get("flag"), Some(""));
    }

    #[test]
    fn refuses_ambiguous_input() {
        assert_eq!(parse(b"a=%G1"), Err(FormError::BadPercent(0)));
        assert_eq!(parse(b"x=1&a=%4"), Err(FormError::BadPercent(1)));
        assert_eq!(parse(b"a=%FF"), Err(FormError::InvalidUtf8(0)));
        assert_eq!(
            parse(b"a=1&a=2"),
            Err(FormError::DuplicateField("a".into()))
        );
        assert_eq!(parse(b"=1"), Err(FormError::EmptyName));
    }

    #[test]
    fn limits_field_count() {
        let body: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("f{i}=1")).collect();
        assert_eq!(
            parse(body.join("&").as_bytes()),
            Err(FormError::TooManyFields)
        );
    }

    #[test]
    fn lookups_and_order_survive_the_single_buffer() {
        let form = parse(b"vads_b=2&signature=s&vads_a=%C3%A9&vads_c=").unwrap();
        let received: Vec<_> = form.iter().collect();
        assert_eq!(
            received,
            [
                ("vads_b", "2"),
                ("signature", "s"),
                ("vads_a", "é"),
                ("vads_c", "")
            ]
        );
        let sorted: Vec<_> = form.iter_by_name().map(|(n, _)| n).collect();
        assert_eq!(sorted, ["signature", "vads_a", "vads_b", "vads_c"]);
        assert_eq!(form.get("vads_a"), Some("é"));
        assert_eq!(form.get("vads_c"), Some(""));
        assert_eq!(form.get("vads_"), None);
        assert_eq!(form.get("vads_d"), None);
        assert_eq!(form.get("a"), None);
        // A split multi-byte character is refused, not glued to its neighbour.
        assert_eq!(parse(b"a=%C3&b=%A9"), Err(FormError::InvalidUtf8(0)));
        assert_eq!(parse(b"%C3=%A9"), Err(FormError::InvalidUtf8(0)));
        assert_eq!(
            parse(b"x=1&&n=%C3%A9&a%C3=%A9"),
            Err(FormError::InvalidUtf8(3))
        );
        assert_eq!(parse(b"x=1&a=%FF%FF&b=2"), Err(FormError::InvalidUtf8(1)));
    }

    #[test]
    fn from_pairs_keeps_the_first_of_equal_names() {
        let form = Form::from_pairs([("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.len(), 3);
    }

    #[test]
    fn encode_round_trips() {
        let form = parse(b"a=Jean+Dupont&b=abc%2Bdef&c=").unwrap();
        assert_eq!(parse(form.encode().as_bytes()).unwrap(), form);
    }
}

/// The single-buffer parser against a reference decoder, on every real
/// IPN fixture: same fields, same order, every lookup finds its value.
#[cfg(test)]
mod fixtures {
    #[test]
    fn every_fixture_decodes_as_serde_urlencoded_does() {
        for entry in
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lyra-form")).unwrap()
        {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            let reference: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
            let Ok(form) = super::parse(&body) else {
                continue;
            };
            let ours: Vec<(String, String)> =
                form.iter().map(|(a, b)| (a.into(), b.into())).collect();
            assert_eq!(ours, reference, "{}", path.display());
            for (n, v) in &reference {
                assert_eq!(form.get(n), Some(v.as_str()), "{} {n}", path.display());
            }
        }
    }
}
