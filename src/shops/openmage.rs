//! OpenMage (Magento 1 LTS) over XML-RPC (`POST {base}api/xmlrpc/`).
//!
//! XML-RPC rather than JSON-RPC because it keeps the numeric fault codes
//! (shops.md A.1): session expiry, unknown orders and refused transitions
//! are told apart by code, not by translatable text.
//!
//! One API session is shared by all pushes to the shop and renewed only
//! when the server says it expired (fault 5).

pub(crate) mod plan;
mod xmlrpc;

use reqwest::header::CONTENT_TYPE;
use tokio::sync::Mutex;

use self::plan::Progress;
use self::xmlrpc::{Response, Value};
use super::{
    http_client, read_body_capped, status_error, transport_error, PushError, Pushed, ShopUpdate,
    MAX_ANSWER_BYTES,
};
use crate::config::{Secret, ShopConfig};

/// `access_denied`: every login failure and every ACL denial.
const FAULT_ACCESS_DENIED: i64 = 2;
/// `session_expired`: log in again and retry once.
const FAULT_SESSION_EXPIRED: i64 = 5;
/// `status_not_changed`: the order refused the transition (hold, unhold,
/// cancel not available), with the reason as the fault text.
const FAULT_STATUS_NOT_CHANGED: i64 = 103;

const ACCESS_DENIED_HINT: &str =
    "access denied: check the API user and key and its role's ACL sales/order/change";

pub struct OpenMage {
    name: String,
    http: reqwest::Client,
    endpoint: String,
    username: String,
    api_key: Option<Secret>,
    /// The current API session. The lock is held while logging in, so
    /// concurrent pushes wait for one login instead of each starting one.
    session: Mutex<Option<Secret>>,
}

/// A failed call: a fault the caller may tolerate, or a final verdict.
#[derive(Debug)]
enum CallError {
    Fault { code: i64, message: String },
    Push(PushError),
}

impl From<PushError> for CallError {
    fn from(e: PushError) -> Self {
        CallError::Push(e)
    }
}

impl CallError {
    fn into_push(self) -> PushError {
        match self {
            CallError::Fault { code, message } => fault_error(code, &message),
            CallError::Push(e) => e,
        }
    }
}

/// Classifies a fault that nobody tolerated (shops.md A.3).
fn fault_error(code: i64, message: &str) -> PushError {
    let reason = format!("OpenMage fault {code}: {message}");
    match code {
        FAULT_ACCESS_DENIED => PushError::permanent(format!("{reason} ({ACCESS_DENIED_HINT})")),
        // Invalid API path, not callable, missing parameter, unknown order,
        // invalid filters or data, refused transition, and Zend's "method
        // does not exist" / "parameters do not match signature": the same
        // request will get the same answer.
        3 | 4 | 6 | 100..=103 | 620 | 623 => PushError::permanent(reason),
        // 0 unknown, 1 internal (often a database hiccup), 5 again right
        // after a fresh login, and anything undocumented: retrying is the
        // safe choice, since the schedule is bounded.
        _ => PushError::transient(reason),
    }
}

impl OpenMage {
    pub fn new(cfg: &ShopConfig) -> Self {
        OpenMage {
            name: cfg.name.clone(),
            http: http_client(cfg),
            endpoint: format!("{}/api/xmlrpc/", cfg.base_url.trim_end_matches('/')),
            username: cfg.username.clone(),
            api_key: cfg.credential.clone(),
            session: Mutex::new(None),
        }
    }

    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        let order = update.order_ref.as_str();
        let mut progress = Progress::new("OpenMage");
        for &step in plan::steps(update.outcome, update.previous_outcome) {
            let method = format!("sales_order.{}", step.verb());
            match self.call(&method, vec![Value::str(order)]).await {
                Ok(_) => progress.done(step),
                // Not holdable, not held, not cancellable: the comment still
                // records the outcome (A.2).
                Err(CallError::Fault {
                    code: FAULT_STATUS_NOT_CHANGED,
                    message,
                }) => {
                    tracing::info!(shop = %self.name, order, step = step.verb(), reason = %message, "OpenMage declined the step");
                    progress.refused(step, &message);
                }
                Err(e) => return Err(e.into_push()),
            }
        }
        self.add_comment(update, &progress.comment(update)).await?;
        Ok(progress.finish(update))
    }

    async fn add_comment(&self, update: &ShopUpdate, comment: &str) -> Result<(), PushError> {
        let args = vec![
            Value::str(&update.order_ref),
            Value::str(update.status.to_string()),
            Value::str(comment),
            // `notify` must be a real boolean: PHP treats the string "false" as true.
            Value::Bool(update.notify),
        ];
        self.call("sales_order.addComment", args)
            .await
            .map(drop)
            .map_err(CallError::into_push)
    }

    /// `call(session, method, args)`, logging in first if needed and once
    /// more if the session has expired.
    async fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, CallError> {
        let session = self.session().await?;
        // The server checks types against `(string, string, array)`: a
        // scalar here would get fault 623.
        let args = Value::Array(args);
        match self.call_in(&session, method, &args).await {
            Err(CallError::Fault {
                code: FAULT_SESSION_EXPIRED,
                ..
            }) => {
                tracing::info!(shop = %self.name, "OpenMage session expired; logging in again");
                let session = self.renew(&session).await?;
                self.call_in(&session, method, &args).await
            }
            other => other,
        }
    }

    async fn call_in(
        &self,
        session: &Secret,
        method: &str,
        args: &Value,
    ) -> Result<Value, CallError> {
        let params = [
            Value::str(session.expose()),
            Value::str(method),
            args.clone(),
        ];
        self.rpc("call", &params, &[session]).await
    }

    /// The current session, logging in if there is none.
    async fn session(&self) -> Result<Secret, CallError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = self.login().await?;
        *current = Some(session.clone());
        Ok(session)
    }

    /// Replaces an expired session, unless a concurrent push already did.
    async fn renew(&self, expired: &Secret) -> Result<Secret, CallError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref().filter(|s| *s != expired) {
            return Ok(session.clone());
        }
        *current = None;
        let session = self.login().await?;
        *current = Some(session.clone());
        Ok(session)
    }

    async fn login(&self) -> Result<Secret, CallError> {
        let key = self
            .api_key
            .as_ref()
            .ok_or_else(|| PushError::permanent("OpenMage: no API key configured"))?;
        let params = [Value::str(&self.username), Value::str(key.expose())];
        match self.rpc("login", &params, &[key]).await {
            Ok(Value::String(session)) if !session.trim().is_empty() => {
                Ok(Secret::new(session.trim()))
            }
            Ok(_) => Err(PushError::transient("OpenMage login returned no session id").into()),
            Err(CallError::Fault {
                code: FAULT_ACCESS_DENIED,
                ..
            }) => Err(PushError::permanent(format!("OpenMage login: {ACCESS_DENIED_HINT}")).into()),
            Err(CallError::Fault { code, message }) => {
                Err(fault_error(code, &format!("{message} (at login)")).into())
            }
            Err(e) => Err(e),
        }
    }

    /// One XML-RPC round trip. `secrets` are masked in any text that could
    /// end up in an error (a debug page might echo the request).
    async fn rpc(
        &self,
        method: &str,
        params: &[Value],
        secrets: &[&Secret],
    ) -> Result<Value, CallError> {
        let response = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "text/xml")
            .body(xmlrpc::method_call(method, params))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body_capped(response, MAX_ANSWER_BYTES).await?;
        // Faults come with HTTP 200; any other status is the web server's.
        if !status.is_success() {
            return Err(status_error(status, &headers, &redact(&body, secrets)).into());
        }
        match xmlrpc::parse_response(&body) {
            Ok(Response::Value(value)) => Ok(value),
            Ok(Response::Fault { code, message }) => Err(CallError::Fault {
                code,
                message: redact(&message, secrets),
            }),
            // A maintenance or proxy page served with 200: usually temporary.
            Err(e) => Err(PushError::transient(format!("OpenMage: {e}")).into()),
        }
    }
}

/// Masks every occurrence of the secrets in `text`.
fn redact(text: &str, secrets: &[&Secret]) -> String {
    secrets
        .iter()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_classified_by_code() {
        assert_eq!(
            fault_error(100, "Requested order not exists."),
            PushError::permanent("OpenMage fault 100: Requested order not exists.")
        );
        for code in [3, 4, 102, 103, 620, 623] {
            assert!(!fault_error(code, "x").is_transient(), "{code}");
        }
        for code in [0, 1, 5, 999] {
            assert!(fault_error(code, "x").is_transient(), "{code}");
        }
        let denied = fault_error(2, "Access denied.").to_string();
        assert!(denied.contains("sales/order/change"), "{denied}");
    }

    #[test]
    fn redact_masks_secrets() {
        let key = Secret::new("s3cret");
        let empty = Secret::new("");
        assert_eq!(redact("bad key s3cret!", &[&key, &empty]), "bad key ***!");
    }
}
