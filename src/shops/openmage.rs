//! OpenMage (Magento 1 LTS) over XML-RPC (`POST {base}api/xmlrpc/`).
//!
//! XML-RPC rather than JSON-RPC because it keeps the numeric fault codes
//! (shops.md A.1): session expiry, unknown orders and refused transitions
//! are told apart by code, not by translatable text.
//!
//! One API session is shared by all pushes to the shop and renewed only
//! when the server says it expired (fault 5).

pub(crate) mod flow;
pub(crate) mod plan;
mod xmlrpc;

use reqwest::header::CONTENT_TYPE;
use tokio::sync::Mutex;

use self::flow::{Entry, OpError, OrderApi, Settings};
use self::plan::{ten_thousandths, HistoryEntry, Op, OrderView};
use self::xmlrpc::{Response, Value};
use super::{
    http_client, read_body_capped, status_error, transport_error, PushError, Pushed, ShopUpdate,
    MAX_ANSWER_BYTES,
};
use crate::config::{OrderRules, Secret, ShopConfig};
use crate::domain::Outcome;

/// `access_denied`: every login failure and every ACL denial.
const FAULT_ACCESS_DENIED: i64 = 2;
/// `session_expired`: log in again and retry once.
const FAULT_SESSION_EXPIRED: i64 = 5;
/// `data_invalid` (102: "Cannot do invoice for order.", a credit memo the
/// order model refused), `status_not_changed` (103: hold, unhold, cancel
/// not available) and the credit memo resource's own refusals (104–106):
/// the order refused the operation, with the reason as the fault text.
const FAULTS_REFUSED: std::ops::RangeInclusive<i64> = 102..=106;

const ACCESS_DENIED_HINT: &str =
    "access denied: check the API user and key and its role's ACL sales/order/change (with sales/order/info, sales/order/invoice/create and sales/order/creditmemo/create)";

pub struct OpenMage {
    name: String,
    http: reqwest::Client,
    endpoint: String,
    username: String,
    api_key: Option<Secret>,
    /// The current API session. The lock is held while logging in, so
    /// concurrent pushes wait for one login instead of each starting one.
    session: Mutex<Option<Secret>>,
    rules: OrderRules,
    review_status: String,
    amount_tolerance: Option<u32>,
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
            rules: cfg.order_rules.clone(),
            review_status: cfg.status_for(Outcome::Review).to_string(),
            amount_tolerance: cfg.amount_tolerance,
        }
    }

    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        let order = OmOrder {
            client: self,
            increment_id: &update.order_ref,
        };
        flow::push(&order, update, &self.settings()).await
    }

    fn settings(&self) -> Settings<'_> {
        Settings {
            name: &self.name,
            rules: &self.rules,
            review_status: self.review_status.clone(),
            amount_tolerance: self.amount_tolerance,
        }
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

/// One OpenMage order, by increment id.
struct OmOrder<'a> {
    client: &'a OpenMage,
    increment_id: &'a str,
}

impl OrderApi for OmOrder<'_> {
    fn shop(&self) -> &'static str {
        "OpenMage"
    }

    /// `sales_order.info`: state, status, totals and the status history.
    async fn read(&self) -> Result<OrderView, PushError> {
        let info = self
            .client
            .call("sales_order.info", vec![Value::str(self.increment_id)])
            .await
            .map_err(CallError::into_push)?;
        order_view(&info).ok_or_else(|| {
            PushError::transient("OpenMage: sales_order.info returned no order struct")
        })
    }

    async fn apply(&self, op: Op, update: &ShopUpdate) -> Result<(), OpError> {
        let order = Value::str(self.increment_id);
        let note = format!(
            "{} transaction {} (ipnsync update #{})",
            update.provider, update.transaction_id, update.outbox_id
        );
        let (method, args) = match op {
            Op::Hold => ("sales_order.hold", vec![order]),
            Op::Unhold => ("sales_order.unhold", vec![order]),
            Op::Cancel => ("sales_order.cancel", vec![order]),
            // (increment id, itemsQty: all, comment, email, includeComment);
            // the API registers the invoice without an online capture.
            Op::Invoice => (
                "sales_order_invoice.create",
                vec![
                    order,
                    Value::Array(Vec::new()),
                    Value::str(note),
                    Value::Bool(false),
                    Value::Bool(false),
                ],
            ),
            // (increment id, creditmemoData: everything, comment, notify,
            // includeComment); the API always refunds offline.
            Op::CreditMemo => (
                "sales_order_creditmemo.create",
                vec![
                    order,
                    Value::Struct(Vec::new()),
                    Value::str(note),
                    Value::Bool(false),
                    Value::Bool(false),
                ],
            ),
        };
        match self.client.call(method, args).await {
            Ok(_) => Ok(()),
            Err(CallError::Fault { code, message }) if FAULTS_REFUSED.contains(&code) => {
                Err(OpError::Refused(format!("fault {code}: {message}")))
            }
            Err(e) => Err(OpError::Push(e.into_push())),
        }
    }

    async fn comment(&self, entry: Entry<'_>) -> Result<(), PushError> {
        let args = vec![
            Value::str(self.increment_id),
            Value::str(entry.status),
            Value::str(entry.text),
            // `notify` must be a real boolean: PHP treats the string "false" as true.
            Value::Bool(entry.notify),
        ];
        self.client
            .call("sales_order.addComment", args)
            .await
            .map(drop)
            .map_err(CallError::into_push)
    }
}

/// A struct member by name.
fn member<'v>(members: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    members.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// A scalar as text (`<nil/>` and structs as empty).
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Double(d)) => d.to_string(),
        Some(Value::Bool(b)) => u8::from(*b).to_string(),
        _ => String::new(),
    }
}

/// The order as `sales_order.info` reports it (every attribute a string,
/// `<nil/>` for NULL).
fn order_view(info: &Value) -> Option<OrderView> {
    let Value::Struct(members) = info else {
        return None;
    };
    let amount = |name: &str| ten_thousandths(&text(member(members, name))).unwrap_or(0);
    // The API lists the history newest first (created_at, entity_id
    // descending) and leaves `entity_id` out (a globally ignored attribute
    // of the API resource): the position gives the order.
    let rows: Vec<&[(String, Value)]> = match member(members, "status_history") {
        Some(Value::Array(rows)) => rows
            .iter()
            .filter_map(|row| match row {
                Value::Struct(r) => Some(r.as_slice()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let newest_first = rows.len() as i64;
    let history = rows
        .iter()
        .enumerate()
        .map(|(i, r)| HistoryEntry {
            id: newest_first - i as i64,
            status: text(member(r, "status")),
            comment: text(member(r, "comment")),
            notified: text(member(r, "is_customer_notified")).trim() == "1",
        })
        .collect();
    Some(OrderView {
        state: text(member(members, "state")),
        status: text(member(members, "status")),
        grand_total: text(member(members, "grand_total")),
        currency: text(member(members, "order_currency_code")),
        grand: amount("grand_total"),
        invoiced: amount("total_invoiced"),
        paid: amount("total_paid"),
        refunded: amount("total_refunded"),
        history,
    })
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
    fn the_order_is_read_from_sales_order_info() {
        let row = |status: &str, comment: Value, notified: &str| {
            Value::Struct(vec![
                ("status".into(), Value::str(status)),
                ("comment".into(), comment),
                ("is_customer_notified".into(), Value::str(notified)),
            ])
        };
        let info = Value::Struct(vec![
            ("state".into(), Value::str("processing")),
            ("status".into(), Value::str("processing")),
            ("grand_total".into(), Value::str("101.5000")),
            ("order_currency_code".into(), Value::str("USD")),
            ("total_invoiced".into(), Value::str("101.5000")),
            ("total_paid".into(), Value::str("101.5000")),
            ("total_refunded".into(), Value::Nil),
            (
                "status_history".into(),
                Value::Array(vec![
                    row("processing", Value::str("[ipnsync update #2]"), "0"),
                    row("processing", Value::Nil, "1"),
                ]),
            ),
        ]);
        let o = order_view(&info).expect("an order");
        assert_eq!((o.grand, o.paid, o.refunded), (1_015_000, 1_015_000, 0));
        assert_eq!(o.grand_total, "101.5000");
        // Newest first on the wire: the first row is the newest.
        assert_eq!(o.history[0].id, 2);
        assert_eq!(o.history[1].id, 1);
        assert!(o.history[1].notified && o.history[1].comment.is_empty());
        assert_eq!(o.delivered(2).map(|h| h.id), Some(2));
        assert!(order_view(&Value::Bool(true)).is_none());
    }

    #[test]
    fn redact_masks_secrets() {
        let key = Secret::new("s3cret");
        let empty = Secret::new("");
        assert_eq!(redact("bad key s3cret!", &[&key, &empty]), "bad key ***!");
    }
}
