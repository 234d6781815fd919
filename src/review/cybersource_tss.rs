//! Cybersource transaction details (`GET /tss/v2/transactions/{id}`): the
//! payment and Decision Manager state of one transaction, pure (no I/O).
//!
//! The OpenAPI model lists `applicationInformation.status` as optional, and
//! real answers usually carry none (nor a `riskInformation.profile`
//! decision). What they do carry is the reply of every service the request
//! ran: `applicationInformation.applications[]`, one entry per service
//! (`ics_auth`, `ics_bill`, `ics_decision`, `ics_decision_early`,
//! `ics_score`, `ics_pa_enroll`…) with its `reasonCode`, `rCode`, `rFlag`,
//! `rMessage`, and the request's overall `reasonCode` / `rCode` / `rFlag`.
//! Codes come as numbers or strings, depending on the field and the answer.
//!
//! [`derive`] turns that into the REST payment status the decision rules
//! already read (cs4 to cs7: `AUTHORIZED`, `AUTHORIZED_RISK_DECLINED`,
//! `PENDING_REVIEW`…), in this order, the first that speaks:
//! 1. `applicationInformation.status`, when present (as before);
//! 2. the services: the payment from `ics_auth` (else `ics_bill`), the
//!    Decision Manager verdict from `ics_decision` (else
//!    `ics_decision_early`): rFlag `DACCEPT`/`DREVIEW`/`DREJECT`, else
//!    reasonCode 100/480/481;
//! 3. the request's overall `rFlag` (`D…` flags), `reasonCode`, `rCode`;
//! 4. the profile decision;
//!
//! and nothing otherwise: a state that cannot be derived confirms nothing.
//! A service entry that is there but cannot be read (an unknown Decision
//! Manager code, an `ics_auth` without codes) makes the whole answer
//! unknown rather than letting a weaker source speak over it.

use serde_json::Value;

use crate::domain::outcome::cybersource::REASON_PROFILE_REJECT;

/// Reason codes (Simple Order / TSS): the request succeeded.
pub const CODE_SUCCESS: i64 = 100;
/// Partial approval: only part of the amount was authorised.
pub const CODE_PARTIAL: i64 = 110;
/// Decision Manager marked the order for review.
pub const CODE_DM_REVIEW: i64 = 480;
/// Decision Manager rejected the order.
pub const CODE_DM_REJECT: i64 = 481;

/// What transaction details say, as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TssState {
    /// The REST payment status equivalent (`AUTHORIZED`,
    /// `AUTHORIZED_RISK_DECLINED`…); empty when nothing can be derived.
    pub status: String,
    /// Its reason (`DECISION_PROFILE_REJECT` for a rejection without an
    /// authorisation), or `applicationInformation.reason` with a status.
    pub reason: String,
    /// Where it comes from, for comments and logs (e.g. `ics_auth 100 SOK,
    /// ics_decision 481 DREJECT`); empty when `status` was given.
    pub evidence: String,
}

/// A number or a string as text; `None` when absent, null or blank.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn code(v: &Value) -> Option<i64> {
    text(v).and_then(|t| t.parse().ok())
}

/// One service's (or the request's) reply codes.
#[derive(Debug, Clone, Default)]
struct Reply {
    reason_code: Option<i64>,
    /// Raw, for the evidence when it is not a number.
    reason_text: Option<String>,
    r_code: Option<String>,
    r_flag: Option<String>,
}

impl Reply {
    fn of(v: &Value) -> Reply {
        Reply {
            reason_code: code(&v["reasonCode"]),
            reason_text: text(&v["reasonCode"]),
            r_code: text(&v["rCode"]),
            r_flag: text(&v["rFlag"]).map(|f| f.to_ascii_uppercase()),
        }
    }

    fn is_empty(&self) -> bool {
        self.reason_text.is_none() && self.r_code.is_none() && self.r_flag.is_none()
    }

    fn describe(&self, name: &str) -> String {
        let mut parts = vec![name.to_owned()];
        parts.extend(self.reason_text.clone());
        if self.reason_text.is_none() {
            parts.extend(self.r_code.as_ref().map(|c| format!("rCode {c}")));
        }
        parts.extend(self.r_flag.clone());
        parts.join(" ")
    }
}

/// The payment, from the authorisation or capture service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payment {
    Authorised,
    Partial,
    Declined,
    Unreadable,
}

/// The Decision Manager verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Risk {
    Accept,
    Review,
    Reject,
    Unreadable,
}

/// A payment service's reply: its reason code first (100 success, 110
/// partial, anything else declined or error), else `rCode` (`1` ok, `0`
/// declined, `-1` error), else `rFlag` `SOK`.
fn payment(r: &Reply) -> Payment {
    match (r.reason_code, r.reason_text.as_ref(), r.r_code.as_deref()) {
        (Some(CODE_SUCCESS), _, _) => Payment::Authorised,
        (Some(CODE_PARTIAL), _, _) => Payment::Partial,
        (Some(_), _, _) => Payment::Declined,
        // A reason code that is not a number: not readable.
        (None, Some(_), _) => Payment::Unreadable,
        (None, None, Some("1")) => Payment::Authorised,
        (None, None, Some("0" | "-1")) => Payment::Declined,
        // `SOK` only when nothing else was said: beside an rCode this
        // code does not know, the reply is unreadable, never a payment.
        (None, None, None) if r.r_flag.as_deref() == Some("SOK") => Payment::Authorised,
        _ => Payment::Unreadable,
    }
}

/// A Decision Manager reply: its `rFlag` first, else its reason code.
fn risk(r: &Reply) -> Risk {
    match r.r_flag.as_deref() {
        Some("DACCEPT") => return Risk::Accept,
        Some("DREVIEW") => return Risk::Review,
        Some("DREJECT") => return Risk::Reject,
        _ => {}
    }
    match r.reason_code {
        Some(CODE_SUCCESS) => Risk::Accept,
        Some(CODE_DM_REVIEW) => Risk::Review,
        Some(CODE_DM_REJECT) => Risk::Reject,
        _ => Risk::Unreadable,
    }
}

/// The state of transaction details, from `applicationInformation` and
/// `riskInformation` (either may be absent or `null`).
pub fn derive(application: &Value, risk_information: &Value) -> TssState {
    if let Some(status) = text(&application["status"]) {
        return TssState {
            status: status.to_ascii_uppercase(),
            reason: text(&application["reason"]).unwrap_or_default(),
            evidence: String::new(),
        };
    }
    if let Some(state) = from_applications(application) {
        return state;
    }
    if let Some(state) = from_request(application) {
        return state;
    }
    let decision = text(&risk_information["profile"]["decision"])
        .unwrap_or_default()
        .to_ascii_uppercase();
    let status = match decision.as_str() {
        "ACCEPT" => "ACCEPTED",
        "REJECT" => "REJECTED",
        "REVIEW" => "PENDING_REVIEW",
        _ => "",
    };
    TssState {
        status: status.to_owned(),
        reason: String::new(),
        evidence: if status.is_empty() {
            "no status, no service reply, no profile decision".to_owned()
        } else {
            format!("profile decision {decision}")
        },
    }
}

/// Step 2: the services' replies; `None` when none of the payment or
/// Decision Manager services is listed.
fn from_applications(application: &Value) -> Option<TssState> {
    let apps = application["applications"].as_array()?;
    let find = |name: &'static str| {
        apps.iter()
            .find(|a| text(&a["name"]).is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|a| (name, Reply::of(a)))
    };
    let payment_app = find("ics_auth").or_else(|| find("ics_bill"));
    // The full decision runs after the early one when the early one let
    // the order through; when both are there, the later one stands.
    let risk_app = find("ics_decision").or_else(|| find("ics_decision_early"));
    if payment_app.is_none() && risk_app.is_none() {
        // Services that say nothing about the funds or the risk (payer
        // authentication, scoring): the request's overall "success" is
        // theirs, not a payment's, so nothing below may speak for it.
        return (!apps.is_empty()).then(|| TssState {
            evidence: "no payment or Decision Manager service in the reply".to_owned(),
            ..TssState::default()
        });
    }
    let evidence = payment_app
        .iter()
        .chain(risk_app.iter())
        .map(|(name, r)| r.describe(name))
        .collect::<Vec<_>>()
        .join(", ");
    let unknown = || TssState {
        evidence: format!("{evidence}: unreadable"),
        ..TssState::default()
    };
    let paid = match &payment_app {
        Some((_, r)) if r.is_empty() => return Some(unknown()),
        Some((_, r)) => match payment(r) {
            Payment::Unreadable => return Some(unknown()),
            p => Some(p),
        },
        None => None,
    };
    let verdict = match &risk_app {
        Some((_, r)) => match risk(r) {
            Risk::Unreadable => return Some(unknown()),
            v => Some(v),
        },
        None => None,
    };
    let authorised = matches!(paid, Some(Payment::Authorised | Payment::Partial));
    let (status, reason) = match (verdict, paid) {
        (Some(Risk::Reject), _) if authorised => ("AUTHORIZED_RISK_DECLINED", ""),
        (Some(Risk::Reject), _) => ("DECLINED", REASON_PROFILE_REJECT),
        (_, Some(Payment::Declined)) => ("DECLINED", ""),
        (Some(Risk::Review), _) if authorised => ("AUTHORIZED_PENDING_REVIEW", ""),
        (Some(Risk::Review), _) => ("PENDING_REVIEW", ""),
        (_, Some(Payment::Partial)) => ("PARTIAL_AUTHORIZED", ""),
        (_, Some(Payment::Authorised)) => ("AUTHORIZED", ""),
        // Decision Manager alone accepted (no payment service ran).
        (Some(Risk::Accept), None) => ("ACCEPTED", ""),
        (None, None) | (_, Some(Payment::Unreadable)) | (Some(Risk::Unreadable), _) => {
            return Some(unknown())
        }
    };
    Some(TssState {
        status: status.to_owned(),
        reason: reason.to_owned(),
        evidence,
    })
}

/// Step 3: the request's overall reply; `None` when it carries no code.
fn from_request(application: &Value) -> Option<TssState> {
    let r = Reply::of(application);
    if r.is_empty() {
        return None;
    }
    let evidence = r.describe("request");
    let (status, reason) = match (r.r_flag.as_deref(), r.reason_code, r.r_code.as_deref()) {
        (Some("DREJECT"), _, _) | (_, Some(CODE_DM_REJECT), _) => {
            ("DECLINED", REASON_PROFILE_REJECT)
        }
        (Some("DREVIEW"), _, _) | (_, Some(CODE_DM_REVIEW), _) => ("PENDING_REVIEW", ""),
        (Some("DACCEPT"), _, _) => ("ACCEPTED", ""),
        (_, Some(CODE_SUCCESS), _) => ("AUTHORIZED", ""),
        (_, Some(CODE_PARTIAL), _) => ("PARTIAL_AUTHORIZED", ""),
        (_, Some(_), _) => ("DECLINED", ""),
        (_, None, _) if r.reason_text.is_some() => ("", ""),
        (_, None, Some("1")) => ("AUTHORIZED", ""),
        (_, None, Some("0" | "-1")) => ("DECLINED", ""),
        (Some("SOK"), None, None) => ("AUTHORIZED", ""),
        _ => ("", ""),
    };
    Some(TssState {
        status: status.to_owned(),
        reason: reason.to_owned(),
        evidence: if status.is_empty() {
            format!("{evidence}: unreadable")
        } else {
            evidence
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str, reason: Value, r_code: &str, r_flag: &str) -> Value {
        json!({"name": name, "reasonCode": reason, "rCode": r_code, "rFlag": r_flag,
               "rMessage": "…", "returnCode": 1_010_000})
    }

    fn state(application: Value) -> (String, String) {
        let s = derive(&application, &json!({"score": {}}));
        (s.status, s.reason)
    }

    fn is(status: &str) -> (String, String) {
        (status.to_owned(), String::new())
    }

    fn rejected_without_auth() -> (String, String) {
        ("DECLINED".to_owned(), REASON_PROFILE_REJECT.to_owned())
    }

    #[test]
    fn the_status_when_present_decides_as_before() {
        let s = derive(
            &json!({"status": "authorized_risk_declined", "reason": "X", "reasonCode": 100,
                    "applications": [app("ics_auth", json!("100"), "1", "SOK")]}),
            &json!({"profile": {"decision": "ACCEPT"}}),
        );
        assert_eq!(
            (s.status.as_str(), s.reason.as_str()),
            ("AUTHORIZED_RISK_DECLINED", "X")
        );
        // A null or blank status is no status.
        assert_eq!(
            state(json!({"status": null, "reasonCode": 100})),
            is("AUTHORIZED")
        );
        assert_eq!(
            state(json!({"status": " ", "reasonCode": "480"})),
            is("PENDING_REVIEW")
        );
    }

    #[test]
    fn the_services_decide_payment_and_risk() {
        let auth_ok = app("ics_auth", json!("100"), "1", "SOK");
        let auth_declined = app("ics_auth", json!("203"), "0", "DCARDREFUSED");
        let bill_ok = app("ics_bill", json!("100"), "1", "SOK");
        let dm =
            |code: &str, r_code: &str, flag: &str| app("ics_decision", json!(code), r_code, flag);
        let rows: Vec<(Value, (String, String))> = vec![
            // The example: authorised sale, Decision Manager reject.
            (
                json!({"reasonCode": 481, "rCode": "0", "rFlag": "DREJECT",
                       "applications": [dm("481", "0", "DREJECT"), auth_ok.clone()]}),
                is("AUTHORIZED_RISK_DECLINED"),
            ),
            // A plain approved authorisation, no Decision Manager.
            (
                json!({"reasonCode": "100", "rCode": "1", "rFlag": "SOK",
                       "applications": [auth_ok.clone()]}),
                is("AUTHORIZED"),
            ),
            // A sale: authorised and captured.
            (
                json!({"applications": [auth_ok.clone(), bill_ok.clone()]}),
                is("AUTHORIZED"),
            ),
            // Capture only (a follow-on request).
            (json!({"applications": [bill_ok.clone()]}), is("AUTHORIZED")),
            (
                json!({"applications": [app("ics_bill", json!(235), "0", "DINVALIDDATA")]}),
                is("DECLINED"),
            ),
            // Decision Manager accepted, the authorisation too.
            (
                json!({"applications": [dm("100", "1", "DACCEPT"), auth_ok.clone()]}),
                is("AUTHORIZED"),
            ),
            // Review after authorisation, review before (no authorisation).
            (
                json!({"reasonCode": 480, "applications": [auth_ok.clone(), dm("480", "1", "DREVIEW")]}),
                is("AUTHORIZED_PENDING_REVIEW"),
            ),
            (
                json!({"applications": [dm("480", "1", "DREVIEW")]}),
                is("PENDING_REVIEW"),
            ),
            // Rejected before any authorisation (early decision).
            (
                json!({"applications": [app("ics_decision_early", json!("481"), "0", "DREJECT")]}),
                rejected_without_auth(),
            ),
            // The full decision stands over the early one.
            (
                json!({"applications": [app("ics_decision_early", json!("100"), "1", "DACCEPT"),
                                        dm("481", "0", "DREJECT"), auth_ok.clone()]}),
                is("AUTHORIZED_RISK_DECLINED"),
            ),
            // Decision Manager alone accepted.
            (
                json!({"applications": [dm("100", "1", "DACCEPT")]}),
                is("ACCEPTED"),
            ),
            // By reason code when the flag is not a decision flag.
            (
                json!({"applications": [dm("481", "0", ""), auth_ok.clone()]}),
                is("AUTHORIZED_RISK_DECLINED"),
            ),
            (
                json!({"applications": [app("ics_decision", json!(480), "1", "SOK"), auth_ok.clone()]}),
                is("AUTHORIZED_PENDING_REVIEW"),
            ),
            // A declined authorisation: failed, whatever DM said before.
            (
                json!({"applications": [dm("100", "1", "DACCEPT"), auth_declined.clone()]}),
                is("DECLINED"),
            ),
            (
                json!({"applications": [dm("480", "1", "DREVIEW"), auth_declined.clone()]}),
                is("DECLINED"),
            ),
            (
                json!({"applications": [dm("481", "0", "DREJECT"), auth_declined.clone()]}),
                rejected_without_auth(),
            ),
            // Partial approval.
            (
                json!({"applications": [app("ics_auth", json!(110), "1", "SPARTIAL")]}),
                is("PARTIAL_AUTHORIZED"),
            ),
            // Codes as numbers, rCode alone, rFlag alone.
            (
                json!({"applications": [{"name": "ics_auth", "rCode": 1}]}),
                is("AUTHORIZED"),
            ),
            (
                json!({"applications": [{"name": "ics_auth", "rCode": "-1", "rFlag": "ESYSTEM"}]}),
                is("DECLINED"),
            ),
            (
                json!({"applications": [{"name": "ics_auth", "rFlag": "SOK"}]}),
                is("AUTHORIZED"),
            ),
            // Services that say nothing about payment or risk: unknown,
            // whatever the request's overall code (its success is theirs).
            (
                json!({"reasonCode": 100, "applications": [app("ics_pa_enroll", json!("100"), "1", "SOK"),
                                                          app("ics_score", json!("100"), "1", "SOK")]}),
                is(""),
            ),
            // `SOK` beside an rCode this code does not know: unreadable.
            (
                json!({"applications": [{"name": "ics_auth", "rCode": "2", "rFlag": "SOK"}]}),
                is(""),
            ),
        ];
        for (application, want) in rows {
            assert_eq!(state(application.clone()), want, "{application}");
        }
    }

    #[test]
    fn the_request_codes_decide_without_services() {
        for (application, want) in [
            (json!({"reasonCode": 100}), is("AUTHORIZED")),
            (
                json!({"reasonCode": "100", "rFlag": "SOK"}),
                is("AUTHORIZED"),
            ),
            (json!({"reasonCode": 481}), rejected_without_auth()),
            (json!({"rFlag": "DREJECT"}), rejected_without_auth()),
            (json!({"reasonCode": "480"}), is("PENDING_REVIEW")),
            (json!({"rFlag": "dreview"}), is("PENDING_REVIEW")),
            (json!({"rFlag": "DACCEPT"}), is("ACCEPTED")),
            (json!({"reasonCode": 110}), is("PARTIAL_AUTHORIZED")),
            (json!({"reasonCode": 203, "rCode": "0"}), is("DECLINED")),
            (json!({"reasonCode": "150", "rCode": "-1"}), is("DECLINED")),
            (json!({"rCode": "1"}), is("AUTHORIZED")),
            (json!({"rCode": 0}), is("DECLINED")),
            (json!({"applications": []}), is("")),
            (json!({"rCode": "2", "rFlag": "SOK"}), is("")),
        ] {
            assert_eq!(state(application.clone()), want, "{application}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_unknown_never_accepted() {
        for application in [
            json!({}),
            json!(null),
            // An unknown Decision Manager code does not let the payment
            // or the request's codes speak over it.
            json!({"reasonCode": 100, "applications": [
                app("ics_decision", json!("102"), "-1", "EINVALIDDATA"),
                app("ics_auth", json!("100"), "1", "SOK")]}),
            json!({"reasonCode": 100, "applications": [{"name": "ics_auth"}]}),
            json!({"applications": [app("ics_auth", json!("abc"), "1", "SOK")]}),
            json!({"reasonCode": "n/a"}),
            json!({"rFlag": "SOMETHING"}),
        ] {
            let s = derive(&application, &json!({"providers": {}}));
            assert_eq!(s.status, "", "{application}: {s:?}");
            assert!(!s.evidence.is_empty(), "{application}");
        }
    }

    #[test]
    fn the_profile_decision_is_the_last_resort() {
        let profile = |d: &str| json!({"profile": {"decision": d}});
        assert_eq!(
            derive(&json!({}), &profile("REVIEW")).status,
            "PENDING_REVIEW"
        );
        assert_eq!(derive(&json!({}), &profile("reject")).status, "REJECTED");
        assert_eq!(derive(&json!({}), &profile("ACCEPT")).status, "ACCEPTED");
        // The services speak before it.
        let with_auth = json!({"applications": [app("ics_auth", json!("100"), "1", "SOK")]});
        assert_eq!(derive(&with_auth, &profile("REJECT")).status, "AUTHORIZED");
    }

    #[test]
    fn the_evidence_names_the_services() {
        let s = derive(
            &json!({"reasonCode": 481, "rCode": "0", "rFlag": "DREJECT", "applications": [
                app("ics_decision", json!("481"), "0", "DREJECT"),
                app("ics_auth", json!(100), "1", "SOK")]}),
            &Value::Null,
        );
        assert_eq!(s.evidence, "ics_auth 100 SOK, ics_decision 481 DREJECT");
        let s = derive(&json!({"rCode": "1"}), &Value::Null);
        assert_eq!(s.evidence, "request rCode 1");
    }
}
