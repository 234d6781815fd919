//! The console's test setup: the real daemon with `[console]` operators, a
//! fake webhook shop and a fake Lyra REST API, plus a small cookie-keeping
//! HTTP client that does not follow redirects (so tests see each 303).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};

use super::daemon::{config, fixture, Daemon};
use super::fake_lyra_api::FakeLyraApi;
use super::fake_webhook::{FakeWebhook, Mode};

pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const SITE_ID: &str = "12345678";
pub const REST_PASSWORD: &str = "testpassword_R3stApiPassw0rd";
pub const UUID: &str = "5d6e7f8091a2b3c4d5e6f708192a3b4c";
pub const ALICE_PASSWORD: &str = "correct horse battery staple";
pub const BOB_TOKEN: &str = "bob-token-0123456789abcdef";

/// An Argon2id hash with light parameters (the format `hash-password`
/// writes; the parameters travel in the string).
pub fn light_hash(password: &str) -> String {
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"ipnsync-test-salt").unwrap();
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

pub struct Setup {
    pub daemon: Daemon,
    pub shop: FakeWebhook,
    pub lyra: FakeLyraApi,
    _dir: tempfile::TempDir,
}

pub fn toml(dir: &Path, shop: &FakeWebhook, lyra: &FakeLyraApi, console: bool) -> String {
    let console = if console {
        format!(
            r#"
[console]
session_lifetime = "1h"
operators = [
  {{ name = "alice", password_hash = "{}" }},
  {{ name = "bob", token = "{BOB_TOKEN}" }},
]
"#,
            light_hash(ALICE_PASSWORD)
        )
    } else {
        String::new()
    };
    format!(
        r#"
database = "{db}"

[dispatch]
retry_schedule = ["100ms"]
jitter = 0.0
poll_interval = "50ms"

[[shops]]
name = "hook"
kind = "webhook"
base_url = "{shop_url}"
key = "{WHSEC}"

[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
site_id = "{SITE_ID}"
mode = "TEST"
test_key = "1122334455667788"
shop = "hook"
api_url = "{lyra_url}"
rest_password = "{REST_PASSWORD}"
api_timeout = "2s"
{console}
"#,
        db = dir.join("ipnsync.db").display(),
        shop_url = shop.url(),
        lyra_url = lyra.api_url(),
    )
}

impl Setup {
    pub async fn start(console: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let shop = FakeWebhook::start(WHSEC).await;
        let lyra = FakeLyraApi::start(SITE_ID, REST_PASSWORD).await;
        let text = toml(dir.path(), &shop, &lyra, console);
        let daemon = Daemon::start(config(&text, dir.path())).await;
        Setup {
            daemon,
            shop,
            lyra,
            _dir: dir,
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.daemon.admin, path)
    }

    /// Order 100042 held for review (Lyra AUTHORISED_TO_VALIDATE), already
    /// pushed to the shop as `review`.
    pub async fn order_in_review(&self) {
        self.lyra.set_transaction(UUID, "AUTHORISED_TO_VALIDATE");
        let (status, text) = self
            .daemon
            .post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await;
        assert_eq!(status, 200, "{text}");
        self.wait_shop_updates(1).await;
    }

    /// Order 100041 (accepted) whose shop update gave up: the shop answered
    /// 500 to every attempt. The shop accepts again afterwards.
    pub async fn dead_update(&self) {
        self.shop.set_mode(Mode::Fail {
            status: 500,
            retry_after: None,
        });
        let (status, text) = self
            .daemon
            .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await;
        assert_eq!(status, 200, "{text}");
        self.wait_for(|s| s.dead_count() == 1, "the update to go dead")
            .await;
        self.shop.set_mode(Mode::Accept);
    }

    pub fn dead_count(&self) -> i64 {
        self.daemon
            .count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'")
    }

    pub fn outcome(&self, order: &str) -> String {
        self.daemon
            .reader()
            .query_row(
                "SELECT outcome FROM orders WHERE shop = 'hook' AND order_ref = ?1",
                [order],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Shop updates the shop accepted (verified), as `(order, outcome)`.
    pub fn delivered(&self) -> Vec<(String, String)> {
        self.shop
            .received()
            .iter()
            .filter(|r| r.verified)
            .map(|r| {
                let j = r.json();
                (
                    j["order"].as_str().unwrap_or_default().to_owned(),
                    j["outcome"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    pub async fn wait_shop_updates(&self, n: usize) {
        self.wait_for(|s| s.shop.received().len() >= n, "shop updates")
            .await;
    }

    /// Polls `done` for up to 10 s (waiting for background work, not a
    /// timing assertion).
    pub async fn wait_for(&self, done: impl Fn(&Setup) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the hidden `csrf` field of the page's first form that
    /// has one.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

/// A client that keeps cookies like a browser (by name, deleted by
/// `Max-Age=0`) and never follows redirects.
pub struct Client {
    base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(setup: &Setup) -> Client {
        Client {
            base: format!("http://{}", setup.daemon.admin),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.expect("console request");
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_with(path, form, &[]).await
    }

    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// Signs in through the form; returns the answer to the POST.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Answer {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("name", name), ("password", password)],
        )
        .await
    }

    /// The CSRF token of the signed-in session (read from a page).
    pub async fn session_csrf(&mut self) -> String {
        let page = self.get("/console/dead").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.csrf()
    }
}
