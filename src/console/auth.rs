//! Who is signed in to the console: password and token checks, sessions,
//! CSRF tokens and the sign-in rate limit. No I/O apart from the clock the
//! callers pass in (`now`, ms), so all of it is unit-tested.
//!
//! Sessions live in memory: a restart signs everyone out, which is the
//! safe direction. The cookie holds a random 256-bit token; the map is
//! keyed by its SHA-256, so a heap dump does not hand out live cookies.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::{ConsoleConfig, OperatorCredential};
use crate::providers::ct_eq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "ipnsync_console";
/// The sign-in form's anti-forgery cookie (double submit: the form carries
/// the same value).
pub const LOGIN_COOKIE: &str = "ipnsync_console_login";

/// Failed sign-ins allowed per client address within [`FAILURE_WINDOW_MS`].
pub const MAX_FAILURES_PER_PEER: usize = 10;
/// Failed sign-ins allowed per operator name within [`FAILURE_WINDOW_MS`].
pub const MAX_FAILURES_PER_NAME: usize = 5;
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Most sessions kept at once; the oldest go first past this.
const MAX_SESSIONS: usize = 1000;
/// Most keys the rate limiter tracks (a flood of addresses cannot grow
/// memory without bound; past it, the oldest entries are dropped).
const MAX_LIMITER_KEYS: usize = 10_000;

/// An Argon2id hash of `password` (PHC string) with the crate's default,
/// OWASP-recommended parameters and a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a typed password (or token) against an operator's credential.
/// CPU-heavy for passwords (Argon2): call it off the async runtime.
pub fn check_credential(credential: &OperatorCredential, typed: &str) -> bool {
    match credential {
        OperatorCredential::PasswordHash(hash) => match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(typed.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        },
        // Hash both sides so neither the content nor the length of the
        // token shows in the comparison's timing.
        OperatorCredential::Token(token) => ct_eq(
            &Sha256::digest(typed.as_bytes()),
            &Sha256::digest(token.expose().as_bytes()),
        ),
    }
}

/// Spends the time of a password check for a name that is no operator, so
/// the answer's timing does not tell which names exist.
pub fn check_nobody(typed: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let _ = check_credential(&OperatorCredential::PasswordHash(hash.clone()), typed);
}

/// A fingerprint of an operator's credential: a session ends when the
/// password or token it was opened with is changed in the configuration.
pub fn credential_tag(credential: &OperatorCredential) -> [u8; 32] {
    let mut h = Sha256::new();
    match credential {
        OperatorCredential::PasswordHash(hash) => {
            h.update(b"password\0");
            h.update(hash.as_bytes());
        }
        OperatorCredential::Token(token) => {
            h.update(b"token\0");
            h.update(token.expose().as_bytes());
        }
    }
    h.finalize().into()
}

/// A random token (256 bits, hex).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Constant-time equality of two tokens of any length.
pub fn tokens_match(a: &str, b: &str) -> bool {
    ct_eq(&Sha256::digest(a.as_bytes()), &Sha256::digest(b.as_bytes()))
}

/// One signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub operator: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    pub expires_at: i64,
    /// [`credential_tag`] of the credential the operator signed in with.
    pub credential: [u8; 32],
    /// A message for the next page (what the last action did).
    pub flash: Option<Flash>,
}

/// A one-time message shown on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Opens a session; returns the cookie token.
    pub fn open(&self, operator: &str, credential: [u8; 32], lifetime_ms: i64, now: i64) -> String {
        let token = random_token();
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            key(&token),
            Session {
                operator: operator.to_owned(),
                csrf: random_token(),
                expires_at: now + lifetime_ms,
                credential,
                flash: None,
            },
        );
        token
    }

    /// The live session of a cookie token. An expired one is removed; so is
    /// one whose operator is no longer configured, or whose password or
    /// token changed (after a reload).
    pub fn get(&self, token: &str, config: &ConsoleConfig, now: i64) -> Option<Session> {
        let mut map = self.map.lock().expect("sessions lock");
        let k = key(token);
        let session = map.get(&k)?;
        let current = config
            .operator(&session.operator)
            .map(|o| credential_tag(&o.credential));
        if session.expires_at <= now || current != Some(session.credential) {
            map.remove(&k);
            return None;
        }
        Some(session.clone())
    }

    /// Takes the flash message of a session, if any.
    pub fn take_flash(&self, token: &str) -> Option<Flash> {
        self.map
            .lock()
            .expect("sessions lock")
            .get_mut(&key(token))
            .and_then(|s| s.flash.take())
    }

    pub fn set_flash(&self, token: &str, flash: Flash) {
        if let Some(s) = self.map.lock().expect("sessions lock").get_mut(&key(token)) {
            s.flash = Some(flash);
        }
    }

    pub fn close(&self, token: &str) {
        self.map.lock().expect("sessions lock").remove(&key(token));
    }
}

/// Failed sign-ins per client address and per operator name.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

impl Limiter {
    /// When the next attempt is allowed (ms) if `peer` or `name` used up
    /// its failures in the window; `None` = go ahead.
    pub fn blocked_until(&self, peer: &str, name: &str, now: i64) -> Option<i64> {
        let map = self.failures.lock().expect("limiter lock");
        [
            (format!("peer:{peer}"), MAX_FAILURES_PER_PEER),
            (format!("name:{name}"), MAX_FAILURES_PER_NAME),
        ]
        .iter()
        .filter_map(|(k, max)| {
            let recent: Vec<i64> = map
                .get(k)?
                .iter()
                .copied()
                .filter(|t| now - t < FAILURE_WINDOW_MS)
                .collect();
            (recent.len() >= *max).then(|| recent[recent.len() - max] + FAILURE_WINDOW_MS)
        })
        .max()
    }

    pub fn failed(&self, peer: &str, name: &str, now: i64) {
        let mut map = self.failures.lock().expect("limiter lock");
        for k in [format!("peer:{peer}"), format!("name:{name}")] {
            map.entry(k).or_default().push(now);
        }
        map.retain(|_, times| {
            times.retain(|t| now - t < FAILURE_WINDOW_MS);
            !times.is_empty()
        });
        while map.len() > MAX_LIMITER_KEYS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, t)| t.last().copied().unwrap_or(0))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
    }

    /// A good sign-in clears the name's failures (not the address's: one
    /// good password must not reset a guessing run from the same place).
    pub fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .expect("limiter lock")
            .remove(&format!("name:{name}"));
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// `Set-Cookie` for a cookie scoped to the console: HttpOnly,
/// SameSite=Strict, `Secure` when configured; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Operator, Secret};
    use std::time::Duration;

    fn console(credential: OperatorCredential) -> ConsoleConfig {
        ConsoleConfig {
            session_lifetime: Duration::from_secs(3600),
            secure_cookie: false,
            operators: vec![Operator {
                name: "alice".into(),
                credential,
            }],
        }
    }

    #[test]
    fn passwords_and_tokens_are_checked() {
        // Light parameters keep the debug-build test fast; the format is
        // the one `hash-password` writes.
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let hash = argon
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let pw = OperatorCredential::PasswordHash(hash);
        assert!(check_credential(&pw, "correct horse"));
        assert!(!check_credential(&pw, "correct hors"));
        assert!(!check_credential(&pw, ""));
        let token = OperatorCredential::Token(Secret::new("0123456789abcdef-token"));
        assert!(check_credential(&token, "0123456789abcdef-token"));
        assert!(!check_credential(&token, "0123456789abcdef-toke"));
        let broken = OperatorCredential::PasswordHash("$argon2id$nonsense".into());
        assert!(!check_credential(&broken, "anything"));
    }

    #[test]
    fn hash_password_writes_a_verifiable_argon2id_phc_string() {
        let hash = hash_password("s3cret pass").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert_ne!(hash, hash_password("s3cret pass").unwrap(), "salted");
        let pw = OperatorCredential::PasswordHash(hash);
        assert!(check_credential(&pw, "s3cret pass"));
        assert!(!check_credential(&pw, "s3cret pas"));
    }

    #[test]
    fn sessions_expire_and_end_with_their_operator() {
        let sessions = Sessions::default();
        let config = console(OperatorCredential::Token(Secret::new("x".repeat(16))));
        let tag = credential_tag(&config.operators[0].credential);
        let token = sessions.open("alice", tag, 1000, 10_000);
        let s = sessions.get(&token, &config, 10_500).unwrap();
        assert_eq!(s.operator, "alice");
        assert_eq!(s.csrf.len(), 64);
        assert!(sessions.get("forged", &config, 10_500).is_none());
        assert!(sessions.get(&token, &config, 11_000).is_none(), "expired");
        assert!(sessions.get(&token, &config, 10_500).is_none(), "and gone");

        let token = sessions.open("mallory", tag, 1000, 10_000);
        assert!(
            sessions.get(&token, &config, 10_001).is_none(),
            "an operator removed from the configuration is signed out"
        );

        let rotated = console(OperatorCredential::Token(Secret::new("y".repeat(16))));
        let token = sessions.open("alice", tag, 1000, 10_000);
        assert!(
            sessions.get(&token, &rotated, 10_001).is_none(),
            "a changed token ends the sessions opened with the old one"
        );

        let token = sessions.open("alice", tag, 1000, 10_000);
        sessions.set_flash(
            &token,
            Flash {
                ok: true,
                text: "done".into(),
            },
        );
        assert_eq!(sessions.take_flash(&token).unwrap().text, "done");
        assert!(sessions.take_flash(&token).is_none(), "shown once");
        sessions.close(&token);
        assert!(sessions.get(&token, &config, 10_001).is_none());
    }

    #[test]
    fn failures_are_limited_per_name_and_per_peer() {
        let l = Limiter::default();
        for i in 0..MAX_FAILURES_PER_NAME as i64 {
            assert_eq!(l.blocked_until("p1", "alice", 1000 + i), None);
            l.failed("p1", "alice", 1000 + i);
        }
        assert_eq!(
            l.blocked_until("p2", "alice", 2000),
            Some(1000 + FAILURE_WINDOW_MS),
            "the name is blocked from anywhere"
        );
        assert_eq!(l.blocked_until("p2", "bob", 2000), None);
        assert_eq!(
            l.blocked_until("p2", "alice", 1000 + FAILURE_WINDOW_MS),
            None,
            "until the window has passed"
        );
        for i in 0..MAX_FAILURES_PER_PEER as i64 {
            l.failed("p3", &format!("user{i}"), 5000);
        }
        assert!(l.blocked_until("p3", "carol", 5001).is_some());
        l.succeeded("alice");
        assert_eq!(l.blocked_until("p1", "alice", 2000), None);
    }

    #[test]
    fn cookies_are_read_by_name_and_set_strictly() {
        let h = "a=1; ipnsync_console=abc; ipnsync_console_login=def";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(h, LOGIN_COOKIE), Some("def"));
        assert_eq!(cookie(h, "b"), None);
        let c = set_cookie(SESSION_COOKIE, "abc", 60, true);
        assert_eq!(
            c,
            "ipnsync_console=abc; Path=/console/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!set_cookie(SESSION_COOKIE, "abc", 60, false).contains("Secure"));
    }
}
