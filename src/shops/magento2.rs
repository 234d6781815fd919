//! Magento 2 over REST (`{base}rest/V1/…`, shops.md C).
//!
//! Same plan as OpenMage (hold / unhold / cancel, then a history comment
//! that sets the status). The REST API addresses orders by entity_id, so
//! the increment id is resolved first unless configured otherwise.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::openmage::flow::{self, Entry, OpError, OrderApi, Settings};
use super::openmage::plan::{ten_thousandths, HistoryEntry, Op, OrderView};
use super::{
    http_client, read_body_capped, status_error, transport_error, PushError, Pushed, ShopUpdate,
    MAX_ANSWER_BYTES,
};
use crate::config::{OrderRules, Secret, ShopConfig};
use crate::domain::Outcome;

pub struct Magento2 {
    name: String,
    http: reqwest::Client,
    /// `{base}rest/V1/`
    api: String,
    auth: Auth,
    lookup_by_increment_id: bool,
    /// increment id → entity_id; an order's entity_id never changes.
    entity_ids: std::sync::Mutex<HashMap<String, String>>,
    rules: OrderRules,
    review_status: String,
    amount_tolerance: Option<u32>,
}

enum Auth {
    /// An integration access token: nothing to renew.
    Integration(Secret),
    /// Admin user and password, exchanged for a token that expires (4 h by
    /// default). The lock is held while fetching one, so concurrent pushes
    /// share a single token request.
    Admin {
        username: String,
        password: Option<Secret>,
        token: Mutex<Option<Secret>>,
    },
}

/// A failed request: the shop's own refusal (which a step may tolerate),
/// or a final verdict.
#[derive(Debug)]
enum ApiError {
    Refused { status: StatusCode, message: String },
    Push(PushError),
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        ApiError::Push(e)
    }
}

impl ApiError {
    fn into_push(self) -> PushError {
        match self {
            ApiError::Refused { status, message } => {
                PushError::permanent(format!("Magento HTTP {}: {message}", status.as_u16()))
            }
            ApiError::Push(e) => e,
        }
    }
}

impl Magento2 {
    pub fn new(cfg: &ShopConfig) -> Self {
        let auth = match &cfg.token {
            Some(token) => Auth::Integration(token.clone()),
            None => Auth::Admin {
                username: cfg.username.clone(),
                password: cfg.credential.clone(),
                token: Mutex::new(None),
            },
        };
        Magento2 {
            name: cfg.name.clone(),
            http: http_client(cfg),
            api: format!("{}/rest/V1/", cfg.base_url.trim_end_matches('/')),
            auth,
            lookup_by_increment_id: cfg.lookup_by_increment_id,
            entity_ids: std::sync::Mutex::new(HashMap::new()),
            rules: cfg.order_rules.clone(),
            review_status: cfg.status_for(Outcome::Review).to_string(),
            amount_tolerance: cfg.amount_tolerance,
        }
    }

    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        let id = self.entity_id(&update.order_ref).await?;
        let order = M2Order { client: self, id };
        let settings = Settings {
            name: &self.name,
            rules: &self.rules,
            review_status: self.review_status.clone(),
            amount_tolerance: self.amount_tolerance,
        };
        flow::push(&order, update, &settings).await
    }

    /// The entity_id to put in the URL.
    async fn entity_id(&self, order_ref: &str) -> Result<String, PushError> {
        if !self.lookup_by_increment_id {
            // It goes into the path: digits only.
            if order_ref.is_empty() || !order_ref.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PushError::permanent(format!(
                    "order {order_ref:?} is not a Magento entity_id (enable lookup_by_increment_id?)"
                )));
            }
            return Ok(order_ref.to_owned());
        }
        if let Some(id) = self.cached_entity_id(order_ref) {
            return Ok(id);
        }
        let found = self
            .request(
                Method::GET,
                "orders",
                &search_by_increment_id(order_ref),
                None,
            )
            .await
            .map_err(ApiError::into_push)?;
        let id = match &found["items"][0]["entity_id"] {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
            Value::Null => {
                return Err(PushError::permanent(format!("order {order_ref} not found")))
            }
            other => {
                return Err(PushError::permanent(format!(
                    "Magento returned entity_id {other} for order {order_ref}"
                )))
            }
        };
        self.entity_ids
            .lock()
            .expect("entity id cache lock")
            .insert(order_ref.to_owned(), id.clone());
        Ok(id)
    }

    fn cached_entity_id(&self, order_ref: &str) -> Option<String> {
        self.entity_ids
            .lock()
            .expect("entity id cache lock")
            .get(order_ref)
            .cloned()
    }

    /// An authenticated request. With an admin token, a 401 means it
    /// expired: fetch a new one and try once more.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut token = self.token().await?;
        let mut response = self.send(&token, method.clone(), path, query, body).await?;
        if response.status() == StatusCode::UNAUTHORIZED && matches!(self.auth, Auth::Admin { .. })
        {
            tracing::info!(shop = %self.name, "Magento token refused; requesting a new one");
            token = self.renew(&token).await?;
            response = self.send(&token, method, path, query, body).await?;
        }
        answer(response, &token).await
    }

    async fn send(
        &self,
        token: &Secret,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, PushError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token.expose())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(transport_error)
    }

    async fn token(&self) -> Result<Secret, PushError> {
        match &self.auth {
            Auth::Integration(token) => Ok(token.clone()),
            Auth::Admin {
                username,
                password,
                token,
            } => {
                let mut current = token.lock().await;
                if let Some(t) = current.as_ref() {
                    return Ok(t.clone());
                }
                let fresh = self.admin_token(username, password.as_ref()).await?;
                *current = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Replaces a refused admin token, unless a concurrent push already did.
    async fn renew(&self, refused: &Secret) -> Result<Secret, PushError> {
        let Auth::Admin {
            username,
            password,
            token,
        } = &self.auth
        else {
            return Ok(refused.clone());
        };
        let mut current = token.lock().await;
        if let Some(t) = current.as_ref().filter(|t| *t != refused) {
            return Ok(t.clone());
        }
        *current = None;
        let fresh = self.admin_token(username, password.as_ref()).await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// `POST integration/admin/token` → a JSON string.
    async fn admin_token(
        &self,
        username: &str,
        password: Option<&Secret>,
    ) -> Result<Secret, PushError> {
        let password = password.ok_or_else(|| {
            PushError::permanent("Magento: no admin password or integration token configured")
        })?;
        let response = self
            .http
            .post(format!("{}integration/admin/token", self.api))
            .json(&json!({ "username": username, "password": password.expose() }))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            let body = read_body_capped(response, MAX_ANSWER_BYTES)
                .await
                .unwrap_or_default();
            return Err(PushError::permanent(format!(
                "Magento admin login refused: check the username and password ({})",
                redact(&message_of(&body).unwrap_or_default(), password)
            )));
        }
        match answer(response, password)
            .await
            .map_err(ApiError::into_push)?
        {
            Value::String(t) if !t.is_empty() => Ok(Secret::new(t)),
            _ => Err(PushError::transient(
                "Magento admin login returned no token",
            )),
        }
    }
}

/// One Magento 2 order, by entity_id.
struct M2Order<'a> {
    client: &'a Magento2,
    id: String,
}

impl OrderApi for M2Order<'_> {
    fn shop(&self) -> &'static str {
        "Magento"
    }

    /// `GET orders/{id}`: state, status, totals and `status_histories`.
    async fn read(&self) -> Result<OrderView, PushError> {
        let path = format!("orders/{}", self.id);
        let order = self
            .client
            .request(Method::GET, &path, &[], None)
            .await
            .map_err(ApiError::into_push)?;
        order_view(&order)
            .ok_or_else(|| PushError::transient("Magento: GET order returned no order object"))
    }

    /// Hold, unhold and cancel are `orders/{id}/…`; invoice and refund are
    /// the `order/{id}/…` services, which record the capture and the refund
    /// offline (`capture: false`; `refund` never goes online).
    async fn apply(&self, op: Op, _update: &ShopUpdate) -> Result<(), OpError> {
        let id = &self.id;
        let (path, body) = match op {
            Op::Hold => (format!("orders/{id}/hold"), None),
            Op::Unhold => (format!("orders/{id}/unhold"), None),
            Op::Cancel => (format!("orders/{id}/cancel"), None),
            Op::Invoice => (
                format!("order/{id}/invoice"),
                Some(json!({"capture": false, "notify": false})),
            ),
            Op::CreditMemo => (format!("order/{id}/refund"), Some(json!({"notify": false}))),
        };
        match self
            .client
            .request(Method::POST, &path, &[], body.as_ref())
            .await
        {
            // hold / unhold / cancel answer `true`; invoice and refund the
            // new document's id.
            Ok(Value::Bool(true)) => Ok(()),
            Ok(Value::Number(_)) | Ok(Value::String(_))
                if matches!(op, Op::Invoice | Op::CreditMemo) =>
            {
                Ok(())
            }
            Ok(answer) => Err(OpError::Refused(match op {
                Op::Cancel => format!("Magento answered {answer}: the order cannot be cancelled"),
                _ => format!("Magento answered {answer}"),
            })),
            Err(ApiError::Refused { status, message }) if status == StatusCode::BAD_REQUEST => {
                Err(OpError::Refused(message))
            }
            Err(e) => Err(OpError::Push(e.into_push())),
        }
    }

    async fn comment(&self, entry: Entry<'_>) -> Result<(), PushError> {
        let body = json!({
            "statusHistory": {
                "comment": entry.text,
                "is_customer_notified": u8::from(entry.notify),
                "is_visible_on_front": u8::from(entry.visible_on_front),
                "status": entry.status,
            }
        });
        let path = format!("orders/{}/comments", self.id);
        self.client
            .request(Method::POST, &path, &[], Some(&body))
            .await
            .map(drop)
            .map_err(ApiError::into_push)
    }
}

/// A JSON scalar as text (null and objects as empty).
fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        _ => String::new(),
    }
}

/// The order as `GET orders/{id}` reports it (Magento leaves out fields
/// that are NULL).
fn order_view(order: &Value) -> Option<OrderView> {
    let fields = order.as_object()?;
    let get = |name: &str| fields.get(name).map(json_text).unwrap_or_default();
    let amount = |name: &str| ten_thousandths(&get(name)).unwrap_or(0);
    let history = order["status_histories"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| HistoryEntry {
                    id: json_text(&r["entity_id"]).parse().unwrap_or(0),
                    status: json_text(&r["status"]),
                    comment: json_text(&r["comment"]),
                    notified: json_text(&r["is_customer_notified"]) == "1",
                })
                .collect()
        })
        .unwrap_or_default();
    Some(OrderView {
        state: get("state"),
        status: get("status"),
        grand_total: get("grand_total"),
        currency: get("order_currency_code"),
        grand: amount("grand_total"),
        invoiced: amount("total_invoiced"),
        paid: amount("total_paid"),
        refunded: amount("total_refunded"),
        history,
    })
}

/// Turns a response into its JSON value or an error.
async fn answer(response: reqwest::Response, secret: &Secret) -> Result<Value, ApiError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_body_capped(response, MAX_ANSWER_BYTES).await?;
    let body = redact(&body, secret);
    if status.is_success() {
        // An empty body is not expected, but it is not a failure either.
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(&body).map_err(|e| {
            PushError::transient(format!(
                "Magento: invalid JSON in HTTP {} answer: {e}",
                status.as_u16()
            ))
            .into()
        });
    }
    if status == StatusCode::UNAUTHORIZED {
        let message = message_of(&body).unwrap_or_else(|| body.chars().take(300).collect());
        return Err(PushError::permanent(format!(
            "Magento HTTP 401: {message} (check the token or the API user's ACL for Magento_Sales)"
        ))
        .into());
    }
    // 404 unknown entity, 400 business-rule refusals: Magento's own answer.
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        if let Some(message) = message_of(&body) {
            return Err(ApiError::Refused { status, message });
        }
    }
    Err(status_error(status, &headers, &body).into())
}

/// Magento's `{"message": "…%1…", "parameters": …}`, placeholders filled in.
fn message_of(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let mut message = v.get("message")?.as_str()?.to_owned();
    match v.get("parameters") {
        Some(Value::Object(named)) => {
            for (name, value) in named {
                message = message.replace(&format!("%{name}"), &plain(value));
            }
        }
        Some(Value::Array(positional)) => {
            // Replace %10 before %1.
            for (i, value) in positional.iter().enumerate().rev() {
                message = message.replace(&format!("%{}", i + 1), &plain(value));
            }
        }
        _ => {}
    }
    Some(message)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The search that finds an order by increment id (shops.md C). reqwest
/// percent-encodes the brackets and the value.
fn search_by_increment_id(order_ref: &str) -> [(&'static str, &str); 3] {
    [
        (
            "searchCriteria[filter_groups][0][filters][0][field]",
            "increment_id",
        ),
        (
            "searchCriteria[filter_groups][0][filters][0][value]",
            order_ref,
        ),
        (
            "searchCriteria[filter_groups][0][filters][0][condition_type]",
            "eq",
        ),
    ]
}

fn redact(text: &str, secret: &Secret) -> String {
    if secret.expose().is_empty() {
        return text.to_owned();
    }
    text.replace(secret.expose(), "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_get_their_parameters() {
        let named = r#"{"message":"The consumer isn't authorized to access %resources.","parameters":{"resources":"Magento_Sales::hold"}}"#;
        assert_eq!(
            message_of(named).as_deref(),
            Some("The consumer isn't authorized to access Magento_Sales::hold.")
        );
        let positional = r#"{"message":"No such entity with %1 = %2","parameters":["orderId",7]}"#;
        assert_eq!(
            message_of(positional).as_deref(),
            Some("No such entity with orderId = 7")
        );
        assert_eq!(message_of("<html>"), None);
    }

    #[test]
    fn the_order_is_read_from_get_orders() {
        let order = json!({
            "state": "new", "status": "pending", "grand_total": 29.9,
            "order_currency_code": "EUR",
            "status_histories": [
                {"entity_id": 9, "status": "pending", "comment": "[ipnsync update #4]", "is_customer_notified": null},
                {"entity_id": 3, "status": "pending", "comment": "Thanks", "is_customer_notified": 1}
            ]
        });
        let o = order_view(&order).expect("an order");
        assert_eq!((o.grand, o.invoiced, o.paid), (299_000, 0, 0));
        assert_eq!(o.grand_total, "29.9");
        assert_eq!(o.delivered(4).map(|h| h.id), Some(9));
        assert!(o.history[1].notified && !o.history[0].notified);
        assert!(order_view(&json!(true)).is_none());
    }

    #[test]
    fn the_search_query_is_percent_encoded() {
        let url = reqwest::Url::parse_with_params(
            "http://shop/rest/V1/orders",
            search_by_increment_id("1000&01 #"),
        )
        .expect("valid url");
        assert_eq!(
            url.query(),
            Some(
                "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bfield%5D=increment_id\
                 &searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bvalue%5D=1000%2601+%23\
                 &searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bcondition_type%5D=eq"
            )
        );
    }
}
