//! A fake webhook receiver that verifies Standard Webhooks signatures on
//! its own (its own key decoding and HMAC), records what it got, and can
//! be told to fail.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use sha2::Sha256;
use tokio::net::TcpListener;

/// How far the timestamp may be from now (the libraries' default).
const TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    /// The signature checked out against the configured secret.
    pub verified: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// What the receiver answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 204 if the signature verifies, else 401.
    Accept,
    /// This status, with an optional `Retry-After`, for every request.
    Fail {
        status: u16,
        retry_after: Option<String>,
    },
    /// Never answers.
    Hang,
}

struct State {
    secret: String,
    mode: Mode,
    received: Vec<Received>,
    /// Requests still to answer late (processed first), and by how much.
    late_answers: usize,
    late_by: Duration,
}

#[derive(Clone)]
pub struct FakeWebhook {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeWebhook {
    /// A receiver that verifies with `secret` (`whsec_…` or raw).
    pub async fn start(secret: &str) -> FakeWebhook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = FakeWebhook {
            addr: listener.local_addr().expect("local addr"),
            state: Arc::new(Mutex::new(State {
                secret: secret.to_owned(),
                mode: Mode::Accept,
                received: Vec::new(),
                late_answers: 0,
                late_by: Duration::ZERO,
            })),
        };
        tokio::spawn(fake.clone().serve(listener));
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/ipnsync", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// Sets the mode and says how many requests came before it, in one
    /// step: every request after that count is answered in the new mode.
    /// (Reading the count, then setting the mode, lets a request arrive in
    /// between, counted as new but answered in the old mode.)
    pub fn switch_mode(&self, mode: Mode) -> usize {
        let mut s = self.lock();
        s.mode = mode;
        s.received.len()
    }

    /// Processes (records) the next `n` requests at once, then holds each
    /// answer for `delay`: the sender times out although the receiver took
    /// the webhook.
    pub fn answer_late_next(&self, n: usize, delay: Duration) {
        let mut s = self.lock();
        s.late_answers = n;
        s.late_by = delay;
    }

    /// What a receiver that deduplicates on `webhook-id` (as the Standard
    /// Webhooks specification asks) processed: the first of each id.
    pub fn processed(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| r.verified && seen.insert(r.id.clone()))
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    async fn serve(self, listener: TcpListener) {
        super::http::serve(listener, move |req| {
            let fake = self.clone();
            async move { fake.handle(req).await }
        })
        .await;
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (id, timestamp, signature, content_type) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            header("content-type"),
        );
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let (mode, verified, late) = {
            let mut s = self.lock();
            let verified = verify_at(&s.secret, &id, &timestamp, &signature, &body, unix_now());
            s.received.push(Received {
                id,
                timestamp,
                signature,
                content_type,
                body: String::from_utf8_lossy(&body).into_owned(),
                verified,
            });
            let late = (s.late_answers > 0).then(|| {
                s.late_answers -= 1;
                s.late_by
            });
            (s.mode.clone(), verified, late)
        };
        if let Some(delay) = late {
            tokio::time::sleep(delay).await;
        }
        match mode {
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                reply(StatusCode::NO_CONTENT, None, "")
            }
            Mode::Fail {
                status,
                retry_after,
            } => reply(
                StatusCode::from_u16(status).expect("status"),
                retry_after.as_deref(),
                "{\"error\":\"receiver says no\"}",
            ),
            Mode::Accept if verified => reply(StatusCode::NO_CONTENT, None, ""),
            Mode::Accept => reply(
                StatusCode::UNAUTHORIZED,
                None,
                "{\"error\":\"bad signature\"}",
            ),
        }
    }
}

/// Standard Webhooks verification: key from `whsec_<base64>` (or raw),
/// HMAC-SHA256 over `id.timestamp.body`, any `v1,` entry of the
/// space-separated list may match, timestamp within the tolerance of `now`.
pub fn verify_at(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: u64,
) -> bool {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => match STANDARD.decode(b64) {
            Ok(k) => k,
            Err(_) => return false,
        },
        None => secret.as_bytes().to_vec(),
    };
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(ts) > TOLERANCE_SECS {
        return false;
    }
    let mut signed = Vec::new();
    signed.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
    signed.extend_from_slice(body);
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
            mac.update(&signed);
            mac.verify_slice(&sig).is_ok()
        })
}

fn reply(status: StatusCode, retry_after: Option<&str>, body: &str) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(r) = retry_after {
        builder = builder.header("retry-after", r);
    }
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("response")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
