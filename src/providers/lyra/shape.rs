//! Is this signed form shaped like an IPN the platform sends?
//!
//! The form signature is `values sorted by name, "+"-joined, + key`: the
//! same formula the shop uses to sign the *payment form* that the buyer's
//! browser receives. The names are not in the signed string, only the
//! order of the values. So whoever holds a signed payment form (every
//! buyer) can rename its fields and re-split its values at any `+` —
//! including a `+` the buyer typed into an address — and post the result
//! as an "IPN" with the same signature (the boundary-shift forgery).
//!
//! The defence is the shape of a real IPN:
//!
//! 1. the IPN-only fields are present, with their documented formats
//!    ([`REQUIRED`]);
//! 2. every documented field has its documented format ([`FIELDS`]); the
//!    free-text families (`vads_cust_*`, `vads_ship_to_*`, `vads_ext_info_*`
//!    …, [`FREE_TEXT_FAMILIES`]) take any text;
//! 3. an undocumented `vads_*` name is accepted (it is signed, stored, and
//!    read by nobody) only when it sorts before [`STRICT_ZONE`]; from
//!    `vads_trans_date` on, every name must be documented.
//!
//! Why that suffices: a forgery must carry `vads_trans_status`, and behind
//! it (in sort order) `vads_trans_uuid` (32 hex) and `vads_url_check_src`
//! (an enum). Their values must come, in the signed string, *after* the
//! forged status. A payment form ends with `vads_site_id`, `vads_trans_date`,
//! `vads_trans_id` (and `vads_url_*`) and `vads_version`: values the shop
//! set, which the buyer's text (`vads_cust_*`, `vads_ship_to_*`,
//! `vads_order_info*`: all sort before them) precedes. To forge, those
//! three values would have to land on names of the strict zone after the
//! uuid and the source, where every name is documented and no format takes
//! them (no strict format admits a `+`, so each field there holds a single
//! value; the one free field, `vads_user_info`, holds one of the three, the
//! enums and the uuid none).
//! What remains possible is in `docs/decisions.md` ("Form IPN shape").

use std::fmt;

use crate::providers::form::names::{self, Id};
use crate::providers::form::Form;

/// The first name of the zone where every name must be documented (see
/// the module documentation). Everything the buyer can type sorts before
/// it; `vads_trans_status`, `vads_trans_uuid` and `vads_url_check_src` sort
/// after it.
pub const STRICT_ZONE: &str = "vads_trans_date";

/// A documented value format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ASCII digits, between `min` and `max` of them (`min` 0: may be empty).
    Digits { min: usize, max: usize },
    /// Exactly `len` lowercase hex digits, or empty when `empty` is set.
    Hex { len: usize, empty: bool },
    /// At most `max` hex digits (either case), or empty.
    HexUpTo(usize),
    /// `yyyyMMddHHmmss`, or empty when `empty` is set.
    Date14 { empty: bool },
    /// One of these values.
    Enum(&'static [&'static str]),
    /// An upper-case code: `A-Z`, `0-9`, `_`, and the list separators the
    /// risk fields use (`;` and `=`), at most 256 characters; surrounding
    /// spaces allowed (the analysis result is trimmed).
    Code,
    /// A transaction status: `A-Z` and `_`, 1 to 64 characters.
    Status,
    /// A single token: printable ASCII without space or `+`, at most 64
    /// characters (order id, card brand, masked card number…).
    Token,
    /// Six letters or digits (`vads_trans_id`).
    TransId,
    /// One line of text without `+` (which cannot be told from the
    /// signature's separator), at most `max` characters.
    Line { max: usize },
    /// Any text (names, addresses, labels, JSON): the platform sends it
    /// as the shop or the buyer typed it.
    Text,
}

impl Format {
    pub fn accepts(self, v: &str) -> bool {
        match self {
            Format::Digits { min, max } => {
                (min..=max).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
            }
            Format::Hex { len, empty } => {
                (empty && v.is_empty())
                    || (v.len() == len
                        && v.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            }
            Format::HexUpTo(max) => v.len() <= max && v.bytes().all(|b| b.is_ascii_hexdigit()),
            Format::Date14 { empty } => {
                (empty && v.is_empty()) || (v.len() == 14 && v.bytes().all(|b| b.is_ascii_digit()))
            }
            Format::Enum(values) => values.contains(&v),
            Format::Code => {
                v.len() <= 256
                    && v.trim().bytes().all(|b| {
                        b.is_ascii_uppercase() || b.is_ascii_digit() || b"_;=".contains(&b)
                    })
            }
            Format::Status => {
                (1..=64).contains(&v.len())
                    && v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            }
            Format::Token => v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic() && b != b'+'),
            Format::TransId => v.len() == 6 && v.bytes().all(|b| b.is_ascii_alphanumeric()),
            Format::Line { max } => {
                v.chars().count() <= max && !v.chars().any(|c| c == '+' || c.is_control())
            }
            Format::Text => true,
        }
    }

    fn describe(self) -> String {
        match self {
            Format::Digits { min, max } if min == max => format!("{min} digits"),
            Format::Digits { min: 0, max } => format!("up to {max} digits"),
            Format::Digits { min, max } => format!("{min} to {max} digits"),
            Format::Hex { len, empty: false } => format!("{len} lowercase hex digits"),
            Format::Hex { len, empty: true } => {
                format!("{len} lowercase hex digits, or empty")
            }
            Format::HexUpTo(max) => format!("up to {max} hex digits"),
            Format::Date14 { empty: false } => "a yyyyMMddHHmmss date".to_owned(),
            Format::Date14 { empty: true } => "a yyyyMMddHHmmss date, or empty".to_owned(),
            Format::Enum(values) => format!(
                "one of {}",
                values
                    .iter()
                    .map(|v| if v.is_empty() { "(empty)" } else { v })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Format::Code => "an upper-case code".to_owned(),
            Format::Status => "an upper-case status".to_owned(),
            Format::Token => "one token (no space, no +, at most 64 characters)".to_owned(),
            Format::TransId => "6 letters or digits".to_owned(),
            Format::Line { max } => format!("one line of at most {max} characters without +"),
            Format::Text => "text".to_owned(),
        }
    }
}

/// `vads_url_check_src` values (lyra.md §5).
pub const URL_CHECK_SOURCES: &[&str] = &[
    "PAY",
    "BO",
    "MERCH_BO",
    "BATCH",
    "BATCH_AUTO",
    "REC",
    "RETRY",
    "DCF",
    "PAYMENT_ORDER",
    "VOICE_ORDER",
];

/// `vads_operation_type` values.
pub const OPERATION_TYPES: &[&str] = &["DEBIT", "CREDIT", "VERIFICATION"];

/// Statuses that report no transaction (none was created): they need no
/// `vads_trans_uuid` nor `vads_operation_type`.
pub const NO_TRANSACTION_STATUSES: &[&str] = &["ABANDONED", "NOT_CREATED"];

const DIGITS_OR_EMPTY: Format = Format::Digits { min: 0, max: 12 };

/// Every documented IPN field and its format (lyra.md §1–§6). Names not
/// listed here and not in [`FREE_TEXT_FAMILIES`] are undocumented.
pub const FIELDS: &[(&str, Format)] = &[
    ("vads_acquirer_network", Format::Token),
    ("vads_action_mode", Format::Token),
    ("vads_amount", DIGITS_OR_EMPTY),
    ("vads_archival_reference_id", Format::Token),
    ("vads_auth_mode", Format::Enum(&["FULL", "MARK", ""])),
    ("vads_auth_number", Format::Token),
    ("vads_auth_result", Format::Digits { min: 0, max: 3 }),
    ("vads_brand_management", Format::Text),
    ("vads_capture_delay", DIGITS_OR_EMPTY),
    ("vads_card_brand", Format::Token),
    ("vads_card_country", Format::Token),
    ("vads_card_nature", Format::Token),
    ("vads_card_number", Format::Token),
    ("vads_card_product_category", Format::Token),
    ("vads_change_rate", Format::Token),
    ("vads_contract_used", Format::Token),
    ("vads_ctx_mode", Format::Enum(&["TEST", "PRODUCTION"])),
    ("vads_currency", Format::Digits { min: 3, max: 3 }),
    ("vads_effective_amount", DIGITS_OR_EMPTY),
    (
        "vads_effective_creation_date",
        Format::Date14 { empty: true },
    ),
    ("vads_effective_currency", Format::Digits { min: 0, max: 3 }),
    ("vads_expiry_month", Format::Digits { min: 0, max: 2 }),
    ("vads_expiry_year", Format::Digits { min: 0, max: 4 }),
    ("vads_ext_trans_id", Format::Token),
    ("vads_extra_result", Format::Token),
    ("vads_hash", Format::HexUpTo(128)),
    ("vads_identifier", Format::Token),
    ("vads_identifier_status", Format::Token),
    ("vads_language", Format::Token),
    ("vads_occurrence_type", Format::Token),
    ("vads_operation_type", Format::Enum(OPERATION_TYPES)),
    // ans..64: the shop's reference, whatever characters it uses.
    ("vads_order_id", Format::Line { max: 64 }),
    ("vads_page_action", Format::Token),
    ("vads_payment_certificate", Format::HexUpTo(64)),
    ("vads_payment_config", Format::Token),
    ("vads_payment_option_code", Format::Token),
    ("vads_payment_seq", Format::Text),
    ("vads_payment_src", Format::Token),
    ("vads_pays_ip", Format::Token),
    ("vads_presentation_date", Format::Date14 { empty: true }),
    ("vads_result", Format::Digits { min: 0, max: 2 }),
    ("vads_risk_analysis_result", Format::Code),
    ("vads_risk_assessment_result", Format::Code),
    ("vads_risk_control", Format::Code),
    ("vads_sequence_number", Format::Digits { min: 0, max: 6 }),
    ("vads_shop_name", Format::Text),
    ("vads_site_id", Format::Digits { min: 1, max: 10 }),
    // The strict zone: every name from here on is documented.
    ("vads_trans_date", Format::Date14 { empty: false }),
    ("vads_trans_id", Format::TransId),
    ("vads_trans_status", Format::Status),
    (
        "vads_trans_uuid",
        Format::Hex {
            len: 32,
            empty: true,
        },
    ),
    ("vads_url_check_src", Format::Enum(URL_CHECK_SOURCES)),
    ("vads_validation_mode", Format::Enum(&["0", "1", ""])),
    ("vads_version", Format::Enum(&["V2"])),
    (
        "vads_warranty_result",
        Format::Enum(&["YES", "NO", "UNKNOWN", ""]),
    ),
];

/// Documented families of free fields: what the shop or the buyer typed
/// (`vads_cust_*`, `vads_ship_to_*`, `vads_order_info*`), the shop's
/// metadata (`vads_ext_info_*`), bank and 3-D Secure details. Any text.
/// Every family sorts before [`STRICT_ZONE`] (a unit test checks it).
pub const FREE_TEXT_FAMILIES: &[&str] = &[
    "vads_bank_",
    "vads_cust_",
    "vads_ext_info_",
    "vads_order_info",
    "vads_product_",
    "vads_ship_to_",
    "vads_threeds_",
];

/// The IPN-only fields every notification carries (the payment form has
/// none of them), beyond `vads_trans_status` itself.
pub const REQUIRED: &[&str] = &[
    "vads_ctx_mode",
    "vads_site_id",
    "vads_trans_date",
    "vads_trans_id",
    "vads_url_check_src",
    "vads_version",
];

/// Why a signed form is not an IPN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    Missing(&'static str),
    BadFormat { field: String, expected: String },
    Undocumented(String),
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Missing(name) => write!(f, "required IPN field {name} is missing"),
            ShapeError::BadFormat { field, expected } => {
                write!(f, "field {field} is not {expected}")
            }
            ShapeError::Undocumented(name) => write!(
                f,
                "undocumented field {name} sorts among the transaction fields (from {STRICT_ZONE} on), where every field must be documented"
            ),
        }
    }
}

fn format_of(name: &str) -> Option<Format> {
    // FIELDS is sorted and unique (`fields_are_sorted_and_unique`): a
    // binary search, not a scan per field of the form.
    FIELDS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| FIELDS[i].1)
        .or_else(|| family_format(name))
}

/// `a` starts with `b`, in constants.
const fn starts_with(a: &[u8], b: &[u8]) -> bool {
    if a.len() < b.len() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// [`format_of`] in constants (a scan: it runs at compile time).
const fn const_format_of(name: &str) -> Option<Format> {
    let name = name.as_bytes();
    let mut i = 0;
    while i < FIELDS.len() {
        let field = FIELDS[i].0.as_bytes();
        if field.len() == name.len() && starts_with(name, field) {
            return Some(FIELDS[i].1);
        }
        i += 1;
    }
    let mut i = 0;
    while i < FREE_TEXT_FAMILIES.len() {
        if starts_with(name, FREE_TEXT_FAMILIES[i].as_bytes()) {
            return Some(Format::Text);
        }
        i += 1;
    }
    None
}

/// Per known name (`form::names`), what the rules make of it: its
/// [`format_of`], or `None` for a name outside `vads_*` (not checked).
/// A known `vads_*` name is always documented (`known_names_are_documented`).
const RULES: [Option<Format>; names::COUNT] = {
    let mut rules = [None; names::COUNT];
    let mut i = 0;
    while i < names::COUNT {
        rules[i] = const_format_of(names::NAMES[i]);
        i += 1;
    }
    rules
};

const TRANS_UUID: Id = names::id("vads_trans_uuid");
const OPERATION_TYPE: Id = names::id("vads_operation_type");
const REQUIRED_IDS: [Id; REQUIRED.len()] = {
    let mut ids = [0; REQUIRED.len()];
    let mut i = 0;
    while i < REQUIRED.len() {
        ids[i] = names::id(REQUIRED[i]);
        i += 1;
    }
    ids
};

fn family_format(name: &str) -> Option<Format> {
    FREE_TEXT_FAMILIES
        .iter()
        .any(|family| name.starts_with(family))
        .then_some(Format::Text)
}

/// Checks that a *verified* form looks like an IPN. `status` is
/// `vads_trans_status`, already known to be present.
///
/// Every IPN passes, so the check is made the cheap way first
/// ([`has_the_shape`]: the form's sorted fields and [`FIELDS`] walked side
/// by side); only a form that fails is checked again field by field in
/// received order ([`first_fault`]), to name the same fault as always.
pub fn check(form: &Form, status: &str) -> Result<(), ShapeError> {
    if has_the_shape(form, status) {
        return Ok(());
    }
    first_fault(form, status)
}

/// The rules of [`first_fault`] as one yes/no. Any order gives the same
/// answer: the fields with a known name first, their formats found by
/// number ([`RULES`]), then the others, by name.
fn has_the_shape(form: &Form, status: &str) -> bool {
    if REQUIRED_IDS.iter().any(|&id| form.known(id).is_none()) {
        return false;
    }
    if !NO_TRANSACTION_STATUSES.contains(&status)
        && [TRANS_UUID, OPERATION_TYPE]
            .iter()
            .any(|&id| form.known(id).map_or(true, str::is_empty))
    {
        return false;
    }
    form.iter_known()
        .all(|(id, value)| RULES[id as usize].map_or(true, |format| format.accepts(value)))
        && form
            .iter_unknown()
            .filter(|(name, _)| name.starts_with("vads_"))
            .all(|(name, value)| match format_of(name) {
                Some(format) => format.accepts(value),
                None => name < STRICT_ZONE,
            })
}

/// The first fault of a form, its fields taken in received order (the
/// reference form of the rules; [`check`] only calls it for a form that
/// has one).
fn first_fault(form: &Form, status: &str) -> Result<(), ShapeError> {
    let get = |name: &str| form.get(name);
    for name in REQUIRED {
        if get(name).is_none() {
            return Err(ShapeError::Missing(name));
        }
    }
    // A transaction exists unless the buyer left before one was created.
    if !NO_TRANSACTION_STATUSES.contains(&status) {
        for name in ["vads_trans_uuid", "vads_operation_type"] {
            if get(name).map_or(true, str::is_empty) {
                return Err(ShapeError::Missing(name));
            }
        }
    }
    for (name, value) in form.iter().filter(|(n, _)| n.starts_with("vads_")) {
        match format_of(name) {
            Some(format) if format.accepts(value) => {}
            Some(format) => {
                return Err(ShapeError::BadFormat {
                    field: name.to_owned(),
                    expected: format.describe(),
                })
            }
            None if name >= STRICT_ZONE => return Err(ShapeError::Undocumented(name.to_owned())),
            // Signed, stored, read by nobody: it cannot reach a field the
            // daemon reads (see the module documentation).
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_families_sort_before_the_strict_zone() {
        for family in FREE_TEXT_FAMILIES {
            // The largest name of the family still sorts before the zone.
            assert!(*family < STRICT_ZONE, "{family}");
            assert!(!STRICT_ZONE.starts_with(family), "{family}");
        }
        // No free text in the strict zone: no format there admits a `+`,
        // so each of its values is a single atom of the signed string.
        for (name, format) in FIELDS.iter().filter(|(n, _)| *n >= STRICT_ZONE) {
            assert_ne!(*format, Format::Text, "{name}");
            assert!(!format.accepts("1 Main St+12345678"), "{name}");
            assert!(!format.accepts("12345678+20261124093015"), "{name}");
        }
    }

    #[test]
    fn known_names_are_documented() {
        assert_eq!(REQUIRED_IDS.len(), REQUIRED.len());
        for (name, _) in FIELDS {
            names::id(name);
        }
        for (i, name) in names::NAMES.iter().enumerate() {
            let expected = name.starts_with("vads_").then(|| format_of(name).unwrap());
            assert_eq!(RULES[i], expected, "{name}");
        }
    }

    #[test]
    fn fields_are_sorted_and_unique() {
        for pair in FIELDS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} / {}", pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn formats_accept_documented_values_only() {
        let table: &[(Format, &str, bool)] = &[
            (
                Format::Hex {
                    len: 32,
                    empty: true,
                },
                "9b0c5a1f2e3d4c5b6a79881726354abc",
                true,
            ),
            (
                Format::Hex {
                    len: 32,
                    empty: true,
                },
                "",
                true,
            ),
            (
                Format::Hex {
                    len: 32,
                    empty: true,
                },
                "12345678",
                false,
            ),
            (
                Format::Hex {
                    len: 32,
                    empty: true,
                },
                "9B0C5A1F2E3D4C5B6A79881726354ABC",
                false,
            ),
            (Format::Date14 { empty: false }, "20261124093015", true),
            (Format::Date14 { empty: false }, "2026112409301", false),
            (Format::Date14 { empty: false }, "", false),
            (Format::TransId, "xneDZL", true),
            (Format::TransId, "482911", true),
            (Format::TransId, "4829111", false),
            (Format::Status, "AUTHORISED", true),
            (Format::Status, "AUTHORISED+12345678", false),
            (Format::Status, "V2", false),
            (Format::Status, "", false),
            (Format::Token, "100041", true),
            (Format::Token, "1 Main St", false),
            (Format::Token, "a+b", false),
            (Format::Line { max: 64 }, "WEB 100041/A", true),
            (Format::Line { max: 64 }, "100041+AUTHORISED", false),
            (Format::Line { max: 64 }, "a\nb", false),
            (Format::Code, "ENABLE_3DS;MANUAL_VALIDATION", true),
            (Format::Code, "CARD_FRAUD=OK;SUSPECT_COUNTRY=WARNING", true),
            (Format::Code, " FRD ", true),
            (Format::Code, "frd", false),
            (Format::Enum(URL_CHECK_SOURCES), "MERCH_BO", true),
            (Format::Enum(URL_CHECK_SOURCES), "PAY+DEBIT", false),
            (Format::Digits { min: 3, max: 3 }, "978", true),
            (Format::Digits { min: 3, max: 3 }, "97", false),
        ];
        for (format, value, ok) in table {
            assert_eq!(format.accepts(value), *ok, "{format:?} {value:?}");
        }
    }
}
