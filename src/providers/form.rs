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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or `""` when absent.
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
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
        Form {
            fields: pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }

    /// Encodes the fields back into a form body (`+` for spaces).
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.fields).expect("string pairs always encode")
    }
}

/// Decodes a form body strictly. An empty body is an empty form.
pub fn parse(body: &[u8]) -> Result<Form, FormError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    if body.is_empty() {
        return Ok(Form { fields });
    }
    for (index, pair) in body.split(|&b| b == b'&').enumerate() {
        if pair.is_empty() {
            // `a=1&&b=2` and a trailing `&` are harmless and common.
            continue;
        }
        if fields.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode_component(raw_name, index)?;
        if name.is_empty() {
            return Err(FormError::EmptyName);
        }
        let value = decode_component(raw_value, index)?;
        fields.push((name, value));
    }
    reject_duplicates(&fields)?;
    Ok(Form { fields })
}

/// O(n log n) rather than a scan per field: bodies are hostile input.
fn reject_duplicates(fields: &[(String, String)]) -> Result<(), FormError> {
    let mut names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(FormError::DuplicateField(w[0].to_owned())),
        None => Ok(()),
    }
}

fn decode_component(raw: &[u8], index: usize) -> Result<String, FormError> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        // Most IPN values need no decoding at all.
        return String::from_utf8(raw.to_vec()).map_err(|_| FormError::InvalidUtf8(index));
    }
    let mut out = Vec::with_capacity(raw.len());
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
    String::from_utf8(out).map_err(|_| FormError::InvalidUtf8(index))
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
    fn encode_round_trips() {
        let form = parse(b"a=Jean+Dupont&b=abc%2Bdef&c=").unwrap();
        assert_eq!(parse(form.encode().as_bytes()).unwrap(), form);
    }
}
