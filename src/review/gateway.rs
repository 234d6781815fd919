//! The payment gateways' APIs behind two small traits, so that review
//! actions ([`super::act`]) and the confirmer and reconciliation
//! (`crate::confirm`) run claim → gateway → record without matching on the
//! platform:
//!
//! - [`ActionGateway`]: an operator's validate / deny (Lyra REST V4,
//!   Cybersource Decision Manager);
//! - [`ReadGateway`]: what the gateway says about an order or a
//!   transaction (Lyra `Transaction/Get` / `Order/Get`, Mastercard Gateway
//!   Retrieve Order, Cybersource transaction details).
//!
//! One client type per platform implements what its API offers; the
//! request building and answer reading stay in the platform's modules
//! (`lyra`, `cybersource`, `*_read`). [`for_review`] is the one place that
//! turns a configured review API into its client; `confirm::gateway`
//! chooses a source's read API.
//!
//! The traits are object-safe (`Box<dyn …>`): the futures are boxed, one
//! allocation per gateway call, which is nothing beside an HTTPS request.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::comment::cybersource_call;
use super::{cybersource, cybersource_read, lyra, lyra_read, mpgs_read};
use super::{Action, GatewayError, ReviewError, ReviewRequest};
use crate::config::{CybersourceApi, LyraApi, MpgsApi, ReviewApi, SourceConfig, SourceKind};
use crate::domain::{Notification, Provider};
use crate::providers::mpgs::OrderRefField;
use crate::store::read::review_queue::ReviewTarget;

/// A gateway call under way.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// What the gateway says about the transaction a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The gateway knows it: the notification rebuilt from the gateway's
    /// state (what the decision is made from), and that state in words.
    Found {
        notification: Box<Notification>,
        summary: String,
    },
    /// The gateway does not vouch for it (unknown transaction, another
    /// order's transaction): why, in the gateway's words.
    Unconfirmed(String),
    /// The gateway keeps a record of such decisions but, after the
    /// source's longest wait, has none of this one (a `cybersource-cmos`
    /// decision missing from the Conversion Detail Report): the order is
    /// held for review, a person decides. Why, in words.
    NoRecord(String),
}

/// One transaction an action is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// What the gateway knows it by (Lyra: the transaction uuid;
    /// Cybersource: the Decision Manager request id).
    pub id: String,
    /// Its latest notified status (Lyra's, chooses the first call; empty
    /// when unknown).
    pub stored_status: String,
}

/// A gateway that acts on an operator's decision.
pub trait ActionGateway: Send + Sync {
    /// `lyra`, `cybersource`: the `review_actions.gateway` column, the
    /// report, and what [`super::comment::gateway_name`] names.
    fn id(&self) -> &'static str;

    /// The longest one call may take (the claim outlives the calls).
    fn timeout(&self) -> Duration;

    /// The transactions to act on, checked before anything is claimed.
    fn subjects(&self, target: &ReviewTarget, action: Action) -> Result<Vec<Subject>, ReviewError>;

    /// Acts on each subject in turn; `(call, status)` per subject, the
    /// call in words. Stops at the first failure, whose message then says
    /// what was already done (that cannot be undone from here).
    fn act<'a>(
        &'a self,
        request: &'a ReviewRequest,
        subjects: &'a [Subject],
        comment: &'a str,
    ) -> GatewayFuture<'a, Vec<(String, String)>>;
}

/// A gateway that says what it knows about an order.
pub trait ReadGateway: Send + Sync {
    /// For logs and comments: `Lyra`, `Mastercard Gateway`, `Cybersource`.
    fn name(&self) -> &'static str;

    /// The call made, for the timeline.
    fn call(&self) -> &'static str;

    fn timeout(&self) -> Duration;

    /// Asks about order `platform_order` (the platform's reference, prefix
    /// included): the transaction `stored` names when the API reads
    /// transactions, else the order's last payment.
    fn fetch_order<'a>(
        &'a self,
        source: &'a SourceConfig,
        platform_order: &'a str,
        stored: Option<&'a Notification>,
    ) -> GatewayFuture<'a, Lookup>;

    /// Asks about the transaction `stored` names.
    fn fetch<'a>(&'a self, stored: &'a Notification) -> GatewayFuture<'a, Lookup>;
}

/// The client of a configured review API.
pub fn for_review(api: &ReviewApi) -> Box<dyn ActionGateway> {
    match api {
        ReviewApi::Lyra(api) => Box::new(LyraGateway { api: api.clone() }),
        ReviewApi::Cybersource(api) => Box::new(CybersourceGateway { api: api.clone() }),
    }
}

/// Lyra REST API V4 (`api_url`, shop id, REST password).
#[derive(Debug, Clone)]
pub struct LyraGateway {
    pub api: LyraApi,
}

impl ActionGateway for LyraGateway {
    fn id(&self) -> &'static str {
        "lyra"
    }

    fn timeout(&self) -> Duration {
        self.api.timeout
    }

    fn subjects(&self, target: &ReviewTarget, _: Action) -> Result<Vec<Subject>, ReviewError> {
        Ok(target
            .transactions
            .iter()
            .zip(&target.states)
            .map(|(t, s)| Subject {
                id: t.clone(),
                stored_status: s.lyra_status.clone(),
            })
            .collect())
    }

    fn act<'a>(
        &'a self,
        request: &'a ReviewRequest,
        subjects: &'a [Subject],
        comment: &'a str,
    ) -> GatewayFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            let transactions: Vec<(String, String)> = subjects
                .iter()
                .map(|s| (s.id.clone(), s.stored_status.clone()))
                .collect();
            let done = lyra::act(&self.api, request.action, &transactions, comment).await?;
            Ok(done
                .into_iter()
                .map(|d| (d.service.to_owned(), d.status))
                .collect())
        })
    }
}

impl ReadGateway for LyraGateway {
    fn name(&self) -> &'static str {
        "Lyra"
    }

    fn call(&self) -> &'static str {
        "Transaction/Get"
    }

    fn timeout(&self) -> Duration {
        self.api.timeout
    }

    /// `Order/Get` always: a second attempt may have replaced the notified
    /// transaction.
    fn fetch_order<'a>(
        &'a self,
        source: &'a SourceConfig,
        platform_order: &'a str,
        stored: Option<&'a Notification>,
    ) -> GatewayFuture<'a, Lookup> {
        let provider = match source.kind {
            SourceKind::LyraRest => Provider::LyraRest,
            _ => Provider::LyraForm,
        };
        Box::pin(lyra_read::fetch_order(
            &self.api,
            platform_order,
            stored,
            (provider, source.mode),
        ))
    }

    fn fetch<'a>(&'a self, stored: &'a Notification) -> GatewayFuture<'a, Lookup> {
        Box::pin(lyra_read::fetch(&self.api, stored))
    }
}

/// Cybersource REST (HTTP Signature with the review API's key).
#[derive(Debug, Clone)]
pub struct CybersourceGateway {
    pub api: CybersourceApi,
}

impl ActionGateway for CybersourceGateway {
    fn id(&self) -> &'static str {
        "cybersource"
    }

    fn timeout(&self) -> Duration {
        self.api.timeout
    }

    /// The Decision Manager request ids to act on, one per transaction. The
    /// order number (what `transaction_id` falls back to when the webhook
    /// named no request id) is never one: without an id, the action is
    /// refused.
    fn subjects(&self, target: &ReviewTarget, action: Action) -> Result<Vec<Subject>, ReviewError> {
        let ids: Vec<String> = target.states.iter().map(|s| s.request_id.clone()).collect();
        if ids.is_empty() || ids.iter().any(String::is_empty) {
            return Err(ReviewError::NoDecisionId {
                order: target.order_ref.clone(),
                action: action.as_str(),
            });
        }
        Ok(ids
            .into_iter()
            .map(|id| Subject {
                id,
                stored_status: String::new(),
            })
            .collect())
    }

    fn act<'a>(
        &'a self,
        request: &'a ReviewRequest,
        subjects: &'a [Subject],
        comment: &'a str,
    ) -> GatewayFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            let decisions: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
            let follow_up = request.capture || request.reverse;
            let call = cybersource_call(request);
            let statuses =
                cybersource::act(&self.api, request.action, &decisions, comment, follow_up).await?;
            Ok(statuses.into_iter().map(|s| (call.clone(), s)).collect())
        })
    }
}

/// Transaction details: confirms webhooks only (reconciliation reads the
/// Conversion Detail Report, `confirm::reconcile::report_findings`).
impl ReadGateway for CybersourceGateway {
    fn name(&self) -> &'static str {
        "Cybersource"
    }

    fn call(&self) -> &'static str {
        "transaction details"
    }

    fn timeout(&self) -> Duration {
        self.api.timeout
    }

    /// By the transaction a notification names only: an order without one
    /// is found through the Conversion Detail Report.
    fn fetch_order<'a>(
        &'a self,
        _: &'a SourceConfig,
        platform_order: &'a str,
        stored: Option<&'a Notification>,
    ) -> GatewayFuture<'a, Lookup> {
        Box::pin(async move {
            match stored {
                Some(s) => cybersource_read::fetch_transaction(&self.api, s).await,
                None => Err(GatewayError::Refused(format!(
                    "Cybersource transaction details need a transaction id; order {platform_order} has none"
                ))),
            }
        })
    }

    fn fetch<'a>(&'a self, stored: &'a Notification) -> GatewayFuture<'a, Lookup> {
        Box::pin(cybersource_read::fetch_transaction(&self.api, stored))
    }
}

/// Mastercard Gateway Retrieve Order, with the source's order reference
/// field.
#[derive(Debug, Clone)]
pub struct MpgsGateway {
    pub api: MpgsApi,
    pub order_ref: OrderRefField,
}

impl ReadGateway for MpgsGateway {
    fn name(&self) -> &'static str {
        "Mastercard Gateway"
    }

    fn call(&self) -> &'static str {
        "Retrieve Order"
    }

    fn timeout(&self) -> Duration {
        self.api.timeout
    }

    /// The transaction `stored` names when it is an MPGS notification,
    /// else the order's last transaction.
    fn fetch_order<'a>(
        &'a self,
        _: &'a SourceConfig,
        platform_order: &'a str,
        stored: Option<&'a Notification>,
    ) -> GatewayFuture<'a, Lookup> {
        Box::pin(async move {
            match stored.filter(|s| s.mpgs().is_some()) {
                Some(s) => mpgs_read::fetch(&self.api, self.order_ref, s).await,
                None => mpgs_read::fetch_order(&self.api, self.order_ref, platform_order).await,
            }
        })
    }

    fn fetch<'a>(&'a self, stored: &'a Notification) -> GatewayFuture<'a, Lookup> {
        Box::pin(mpgs_read::fetch(&self.api, self.order_ref, stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::config::SecretOrigin;
    use crate::domain::Outcome;
    use crate::store::read::review_queue::TransactionState;

    fn lyra_api() -> ReviewApi {
        ReviewApi::Lyra(LyraApi {
            api_url: "https://api.example/api-payment/".into(),
            shop_id: "12345678".into(),
            password: Secret::new("testpassword_x"),
            password_origin: SecretOrigin::Inline,
            timeout: Duration::from_secs(7),
        })
    }

    fn target(states: Vec<TransactionState>) -> ReviewTarget {
        ReviewTarget {
            shop: "main".into(),
            order_ref: "100042".into(),
            outcome: Outcome::Review,
            source: "lyra".into(),
            provider: "lyra-form".into(),
            transaction_id: "u1".into(),
            transactions: vec!["u1".into(), "u2".into()],
            states,
        }
    }

    #[test]
    fn a_review_api_becomes_its_client_which_names_what_it_acts_on() {
        let gateway = for_review(&lyra_api());
        assert_eq!(gateway.id(), "lyra");
        assert_eq!(gateway.timeout(), Duration::from_secs(7));
        let state = |s: &str| TransactionState {
            lyra_status: s.into(),
            ..Default::default()
        };
        let subjects = gateway
            .subjects(
                &target(vec![state("AUTHORISED_TO_VALIDATE"), state("CAPTURED")]),
                Action::Validate,
            )
            .unwrap();
        assert_eq!(
            subjects,
            vec![
                Subject {
                    id: "u1".into(),
                    stored_status: "AUTHORISED_TO_VALIDATE".into()
                },
                Subject {
                    id: "u2".into(),
                    stored_status: "CAPTURED".into()
                },
            ]
        );
        let ReviewApi::Lyra(api) = lyra_api() else {
            unreachable!()
        };
        let read: &dyn ReadGateway = &LyraGateway { api };
        assert_eq!((read.name(), read.call()), ("Lyra", "Transaction/Get"));
    }
}
