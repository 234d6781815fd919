//! Review actions: an operator validates or denies a payment held for
//! review, at the gateway and in the shop.
//!
//! One service, [`act`] (and its [`validate`] / [`deny`] shorthands), used
//! by both the CLI (`ipnsync review`) and the admin API ([`http`]):
//!
//! 1. read the order (it must be in `review` or `suspected_fraud`) and the
//!    transactions to act on (`store::read::review_queue`, `store::claims`);
//! 2. claim the order in one short transaction: a `review_actions` row in
//!    state `in_progress`, refused while another action's claim is live, so
//!    a double click, the CLI racing the API or validate racing deny never
//!    reach the gateway twice;
//! 3. ask the gateway of the source that notified it ([`lyra`]: REST V4
//!    Validate, Get or CancelOrRefund; [`cybersource`]: Decision Manager
//!    case action on the notified request id), outside any database
//!    transaction — or skip it with `shop_only` (then 2 and 4 are one
//!    transaction);
//! 4. in a second short transaction: finish the row (`done` or `failed`,
//!    with the gateway's answer) and, on success, move the order (validate
//!    → accepted, deny → canceled) and queue the shop update. If that
//!    transaction fails after the gateway acted, the error says so
//!    ([`ReviewError::ActedNotRecorded`]): retrying would act twice.
//!
//! The gateway then notifies the same change (a MERCH_BO AUTHORISED IPN, a
//! case decision webhook). The state machine ignores it as "order is
//! already accepted/canceled", so the shop is told once.
//!
//! One file per job: [`request`] (what is asked, and its checks),
//! [`error`], [`act`](mod@act) (the orchestration), [`automatic`] (the
//! cancellation after a risk rejection), [`report`], [`comment`] (the texts),
//! [`gateway`] (the gateways behind [`ActionGateway`] / [`ReadGateway`]),
//! `client` (their HTTP plumbing over [`crate::outbound`]), [`json`], and
//! the admin API's routes in [`http`]. The platforms' request builders and
//! answer readers: [`lyra`], [`cybersource`], [`lyra_read`], [`mpgs_read`],
//! [`cybersource_read`].

mod act;
pub mod automatic;
mod client;
pub mod comment;
pub mod cybersource;
pub mod cybersource_read;
pub mod cybersource_tss;
pub mod error;
pub mod expiry;
pub mod gateway;
pub mod http;
pub mod json;
pub mod lyra;
pub mod lyra_read;
pub mod mpgs_read;
pub mod report;
pub mod request;

pub use act::{act, deny, queue, validate};
pub use automatic::{after_live_rejection, cancel_at_gateway, AUTOMATIC_ACTOR};
pub use error::{GatewayError, ReviewError};
pub use gateway::{ActionGateway, ReadGateway};
pub use json::{error_json, queue_json, report_json};
pub use report::ActionReport;
pub use request::{
    Action, ReviewContext, ReviewRequest, CLAIM_MARGIN, MAX_ACTOR_CHARS, MAX_COMMENT_CHARS,
};

use client::{http_client, read_answer, snippet, transport_error};
use error::partial;
