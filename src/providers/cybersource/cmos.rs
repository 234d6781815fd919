//! The legacy Case Management Order Status (CMOS) POST: a form field
//! `content` holding an XML document with one `<Update>` per case that an
//! analyst touched.
//!
//! It is **not signed**, so the source is protected by a secret token (the
//! `token` query parameter, compared in constant time over SHA-256 digests so
//! that not even its length leaks) and, optionally, by an allow-list of peer
//! networks. The XML is read with quick-xml, which never fetches a DTD and
//! never expands a custom entity; a document that declares anything in its
//! DOCTYPE (an internal subset: entities, elements) is refused outright.

use std::net::IpAddr;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::notification::{CaseNote, CybersourceChannel, CybersourceFacts};
use crate::domain::{Facts, Notification, Provider};
use crate::providers::cidr::Cidr;
use crate::providers::form::Form;
use crate::providers::{ct_eq, Refusal};

/// Most `<Update>` elements one document may carry.
pub const MAX_UPDATES: usize = 200;
/// Deepest element nesting accepted (the real document is 4 deep).
const MAX_DEPTH: usize = 16;
/// The root element.
const ROOT: &[u8] = b"CaseManagementOrderStatus";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CmosError {
    #[error("no token query parameter")]
    MissingToken,
    #[error("the token does not match")]
    BadToken,
    #[error("peer {0} is not in the source's allow_from networks")]
    PeerNotAllowed(IpAddr),
    #[error("MerchantID {got:?} does not match the configured merchant")]
    MerchantMismatch { got: String },
    #[error("form field content is missing")]
    MissingContent,
    #[error("the document declares a DTD internal subset (entities are refused)")]
    DtdSubset,
    #[error("the document type is {0:?}, not CaseManagementOrderStatus")]
    WrongDoctype(String),
    #[error("XML is malformed: {0}")]
    BadXml(String),
    #[error("the root element is not CaseManagementOrderStatus")]
    WrongRoot,
    #[error("more than {MAX_UPDATES} Update elements")]
    TooManyUpdates,
    #[error("an Update has no MerchantReferenceNumber")]
    MissingReference,
}

impl CmosError {
    pub fn refusal(&self) -> Refusal {
        match self {
            CmosError::MissingToken | CmosError::BadToken => Refusal::Unauthenticated,
            CmosError::PeerNotAllowed(_) | CmosError::MerchantMismatch { .. } => Refusal::Forbidden,
            CmosError::MissingContent
            | CmosError::DtdSubset
            | CmosError::WrongDoctype(_)
            | CmosError::BadXml(_)
            | CmosError::WrongRoot
            | CmosError::TooManyUpdates
            | CmosError::MissingReference => Refusal::Malformed,
        }
    }
}

/// What a CMOS source checks a request against.
#[derive(Clone, Copy)]
pub struct CmosVerifier<'a> {
    pub token: &'a str,
    /// Empty: any peer.
    pub allow_from: &'a [Cidr],
}

/// Checks the token (401), then the peer (403). The token comes first so
/// that a caller without it learns nothing about the allow-list.
pub fn verify(
    query_token: Option<&str>,
    peer: IpAddr,
    v: &CmosVerifier<'_>,
) -> Result<(), CmosError> {
    let given = query_token.ok_or(CmosError::MissingToken)?;
    // Equal-length digests: the comparison leaks neither content nor length.
    if !ct_eq(&Sha256::digest(given), &Sha256::digest(v.token)) {
        return Err(CmosError::BadToken);
    }
    if !v.allow_from.is_empty() && !v.allow_from.iter().any(|net| net.contains(peer)) {
        return Err(CmosError::PeerNotAllowed(peer));
    }
    Ok(())
}

/// One `<Update>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub merchant_reference: String,
    pub request_id: String,
    pub original_decision: String,
    pub new_decision: String,
    pub reviewer: String,
    pub reviewer_comments: String,
    pub notes: Vec<CaseNote>,
}

/// A parsed document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub merchant_id: String,
    pub updates: Vec<Update>,
}

/// The text-bearing children of `<Update>` that are kept.
#[derive(Clone, Copy)]
enum Field {
    OriginalDecision,
    NewDecision,
    Reviewer,
    ReviewerComments,
}

/// Parses a CMOS document. Elements are matched by local name (the
/// document has a default namespace). Unknown elements, such as `Queue`,
/// `Profile` or `FollowonResult`, are skipped.
pub fn parse_document(xml: &str) -> Result<Document, CmosError> {
    let bad = |e: &dyn std::fmt::Display| CmosError::BadXml(e.to_string());
    let mut reader = Reader::from_str(xml);
    let config = reader.config_mut();
    config.trim_text(true);
    config.check_end_names = true;
    let mut doc = Document::default();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut update: Option<Update> = None;
    let mut field: Option<Field> = None;
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        match event {
            Event::DocType(text) => check_doctype(&text)?,
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                if !empty {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(CmosError::BadXml("elements nested too deep".into()));
                    }
                }
                let name = e.local_name();
                let name = name.as_ref();
                if !seen_root {
                    if name != ROOT {
                        return Err(CmosError::WrongRoot);
                    }
                    seen_root = true;
                    doc.merchant_id = attribute(e, b"MerchantID")?.unwrap_or_default();
                    continue;
                }
                match (name, update.as_mut()) {
                    (b"Update", None) => {
                        if doc.updates.len() == MAX_UPDATES {
                            return Err(CmosError::TooManyUpdates);
                        }
                        let u = Update {
                            merchant_reference: attribute(e, b"MerchantReferenceNumber")?
                                .unwrap_or_default(),
                            request_id: attribute(e, b"RequestID")?.unwrap_or_default(),
                            ..Update::default()
                        };
                        if empty {
                            doc.updates.push(u);
                        } else {
                            update = Some(u);
                        }
                    }
                    (b"Note", Some(u)) => u.notes.push(CaseNote {
                        added_by: attribute(e, b"AddedBy")?.unwrap_or_default(),
                        comment: attribute(e, b"Comment")?.unwrap_or_default(),
                        date: attribute(e, b"Date")?.unwrap_or_default(),
                    }),
                    (name, Some(_)) if !empty && depth == 3 => {
                        field = match name {
                            b"OriginalDecision" => Some(Field::OriginalDecision),
                            b"NewDecision" => Some(Field::NewDecision),
                            b"Reviewer" => Some(Field::Reviewer),
                            b"ReviewerComments" => Some(Field::ReviewerComments),
                            _ => None,
                        };
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                if e.local_name().as_ref() == b"Update" && depth == 2 {
                    if let Some(u) = update.take() {
                        doc.updates.push(u);
                    }
                }
                if depth == 3 {
                    field = None;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(text) => {
                // `unescape` knows only the five predefined entities and
                // character references: `&custom;` is an error here.
                let value = text.unescape().map_err(|e| bad(&e))?;
                append(update.as_mut(), field, &value);
            }
            Event::CData(data) => {
                let value = std::str::from_utf8(&data).map_err(|e| bad(&e))?;
                append(update.as_mut(), field, value);
            }
            // quick-xml reports a truncated document as a plain end of
            // file: a half-sent update must not pass for a whole one.
            Event::Eof if depth > 0 => {
                return Err(CmosError::BadXml(
                    "the document ends inside an element".into(),
                ))
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !seen_root {
        return Err(CmosError::WrongRoot);
    }
    Ok(doc)
}

fn append(update: Option<&mut Update>, field: Option<Field>, value: &str) {
    let (Some(u), Some(field)) = (update, field) else {
        return;
    };
    let slot = match field {
        Field::OriginalDecision => &mut u.original_decision,
        Field::NewDecision => &mut u.new_decision,
        Field::Reviewer => &mut u.reviewer,
        Field::ReviewerComments => &mut u.reviewer_comments,
    };
    slot.push_str(value.trim());
}

/// Cybersource's documents carry `<!DOCTYPE CaseManagementOrderStatus
/// SYSTEM "…/cmorderstatus_1_1.dtd">`. That external DTD is never fetched,
/// so it is harmless and accepted; anything with an internal subset (`[`,
/// where entities would be declared) or another document type is refused.
fn check_doctype(text: &[u8]) -> Result<(), CmosError> {
    let text = String::from_utf8_lossy(text);
    if text.contains('[') || text.contains("<!") {
        return Err(CmosError::DtdSubset);
    }
    let name = text.split_whitespace().next().unwrap_or("");
    if name.rsplit(':').next() != Some("CaseManagementOrderStatus") {
        return Err(CmosError::WrongDoctype(name.chars().take(64).collect()));
    }
    Ok(())
}

fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, CmosError> {
    for attr in e.attributes() {
        let attr = attr.map_err(|e| CmosError::BadXml(e.to_string()))?;
        if attr.key.local_name().as_ref() == name {
            let value = attr
                .unescape_value()
                .map_err(|e| CmosError::BadXml(e.to_string()))?;
            return Ok(Some(value.trim().to_owned()));
        }
    }
    Ok(None)
}

/// Parses a CMOS form body into one notification per `<Update>`, in
/// document order. The transaction identity is the update's `RequestID`
/// (the payment request the case is about), else its reference.
///
/// A document without any `<Update>` is still one notification, about no
/// order and without effect (a note, rule cs1), so that its delivery is
/// stored verbatim like every verified one: never an empty list.
pub fn notifications(
    form: &Form,
    merchant_id: Option<&str>,
) -> Result<Vec<Notification>, CmosError> {
    let content = form.get("content").ok_or(CmosError::MissingContent)?;
    let doc = parse_document(content)?;
    if let Some(expected) = merchant_id {
        if doc.merchant_id != expected {
            return Err(CmosError::MerchantMismatch {
                got: doc.merchant_id,
            });
        }
    }
    if doc.updates.is_empty() {
        return Ok(vec![Notification {
            provider: Provider::Cybersource,
            transaction_id: String::new(),
            transaction_number: String::new(),
            order_ref: String::new(),
            amount_minor: None,
            currency: String::new(),
            facts: Facts::Cybersource(CybersourceFacts {
                channel: CybersourceChannel::Cmos,
                organization_id: doc.merchant_id,
                ..CybersourceFacts::default()
            }),
        }]);
    }
    doc.updates
        .into_iter()
        .map(|u| {
            if u.merchant_reference.is_empty() {
                return Err(CmosError::MissingReference);
            }
            let facts = CybersourceFacts {
                channel: CybersourceChannel::Cmos,
                new_decision: u.new_decision,
                original_decision: u.original_decision,
                reviewer: u.reviewer,
                reviewer_comments: u.reviewer_comments,
                notes: u.notes,
                organization_id: doc.merchant_id.clone(),
                // The Decision Manager id review actions would act on.
                request_id: u.request_id.clone(),
                ..CybersourceFacts::default()
            };
            Ok(Notification {
                provider: Provider::Cybersource,
                transaction_id: if u.request_id.is_empty() {
                    u.merchant_reference.clone()
                } else {
                    u.request_id.clone()
                },
                transaction_number: u.request_id,
                order_ref: u.merchant_reference,
                amount_minor: None,
                currency: String::new(),
                facts: Facts::Cybersource(facts),
            })
        })
        .collect()
}

/// This provider as intake sees it (`providers::Source`).
pub mod source;

#[cfg(test)]
mod tests;
