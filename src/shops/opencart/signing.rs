//! The OpenCart 4.1+ request signature (`catalog/controller/startup/api.php`).
//!
//! Everything here is pure (the time is a parameter) so the reference
//! vectors can be reproduced exactly. The server hashes its *cleaned* copy
//! of the POST data, not the bytes on the wire, so the md5 line is built
//! from the values as OpenCart's `Request::clean` leaves them.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// The signed query parameters other than `time` and `signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SignedCall<'a> {
    pub route: &'a str,
    pub call: &'a str,
    pub username: &'a str,
    pub store_id: u32,
    pub language: &'a str,
    pub currency: &'a str,
}

/// `base64(HMAC-SHA1(key, string_to_sign))`, not yet percent-encoded.
///
/// `host` is the `Host` header the request will carry (with a non-default
/// port), `base_path` the shop's directory ("/" or "/shop/").
pub(super) fn sign(
    key: &str,
    host: &str,
    base_path: &str,
    params: &SignedCall<'_>,
    body: &[(&str, &str)],
    time: u64,
) -> String {
    let message = string_to_sign(host, base_path, params, body, time);
    let mut mac =
        Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(message.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The ten `\n`-terminated lines the server signs.
pub(super) fn string_to_sign(
    host: &str,
    base_path: &str,
    params: &SignedCall<'_>,
    body: &[(&str, &str)],
    time: u64,
) -> String {
    let lines = [
        params.route.to_owned(),
        params.call.to_owned(),
        params.username.to_owned(),
        host.to_owned(),
        base_path.to_owned(),
        params.store_id.to_string(),
        params.language.to_owned(),
        params.currency.to_owned(),
        cleaned_post_md5(body),
        time.to_string(),
    ];
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// md5 hex of `http_build_query($this->request->post)`.
pub(super) fn cleaned_post_md5(body: &[(&str, &str)]) -> String {
    hex::encode(Md5::digest(cleaned_post_query(body).as_bytes()))
}

/// The body as the server re-encodes it after cleaning, in sending order.
pub(super) fn cleaned_post_query(body: &[(&str, &str)]) -> String {
    body.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                php_urlencode(&php_clean(k)),
                php_urlencode(&php_clean(v))
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// OpenCart's `Request::clean`: `trim(htmlspecialchars($v, ENT_COMPAT))`.
pub(super) fn php_clean(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            // ENT_COMPAT leaves single quotes alone.
            _ => escaped.push(c),
        }
    }
    php_trim(&escaped).to_owned()
}

/// PHP's `trim` strips exactly these six bytes; `str::trim` would also
/// strip Unicode spaces (NBSP…) that PHP keeps, and change the hash.
fn php_trim(value: &str) -> &str {
    value.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

/// PHP `urlencode` (what `http_build_query` uses): space → `+`, only
/// `A-Za-z0-9-_.` left as is, uppercase hex.
pub(super) fn php_urlencode(value: &str) -> String {
    percent_encode(value, b"-_.", true)
}

/// PHP `rawurlencode`: RFC 3986, space → `%20`, `~` kept. Used for query
/// values, where a raw `+` in a base64 signature would decode to a space.
pub(super) fn rawurlencode(value: &str) -> String {
    percent_encode(value, b"-_.~", false)
}

fn percent_encode(value: &str, keep: &[u8], space_as_plus: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
