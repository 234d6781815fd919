//! The field names of a Lyra form IPN, known to the decoder by number.
//!
//! Nearly every field of a real IPN has one of these names. The decoder
//! looks each name up once, in a table built at compile time ([`lookup`]),
//! and from then on a known field is a small number: the form orders its
//! known fields by that number ([`NAMES`] is sorted byte-wise, so the
//! number is the name's rank) instead of sorting names, finds them by
//! number instead of a binary search, and the shape check finds their
//! documented formats by number instead of by string. Names not listed
//! here take the byte-wise path, so the list changes speed, never results.
//!
//! The list: every documented field of the shape check
//! (`lyra::shape::FIELDS`), the members of its free-text families the
//! platform commonly sends, and `signature`.

/// A known name's number: its rank in [`NAMES`].
pub type Id = u8;

/// Known names, sorted byte-wise, unique (checked at compile time).
pub const NAMES: &[&str] = &[
    "signature",
    "vads_acquirer_network",
    "vads_action_mode",
    "vads_amount",
    "vads_archival_reference_id",
    "vads_auth_mode",
    "vads_auth_number",
    "vads_auth_result",
    "vads_bank_code",
    "vads_bank_label",
    "vads_bank_product",
    "vads_brand_management",
    "vads_capture_delay",
    "vads_card_brand",
    "vads_card_country",
    "vads_card_nature",
    "vads_card_number",
    "vads_card_product_category",
    "vads_change_rate",
    "vads_contract_used",
    "vads_ctx_mode",
    "vads_currency",
    "vads_cust_address",
    "vads_cust_address_number",
    "vads_cust_cell_phone",
    "vads_cust_city",
    "vads_cust_country",
    "vads_cust_district",
    "vads_cust_email",
    "vads_cust_first_name",
    "vads_cust_id",
    "vads_cust_last_name",
    "vads_cust_legal_name",
    "vads_cust_name",
    "vads_cust_national_id",
    "vads_cust_phone",
    "vads_cust_state",
    "vads_cust_status",
    "vads_cust_title",
    "vads_cust_zip",
    "vads_effective_amount",
    "vads_effective_creation_date",
    "vads_effective_currency",
    "vads_expiry_month",
    "vads_expiry_year",
    "vads_ext_trans_id",
    "vads_extra_result",
    "vads_hash",
    "vads_identifier",
    "vads_identifier_status",
    "vads_language",
    "vads_occurrence_type",
    "vads_operation_type",
    "vads_order_id",
    "vads_order_info",
    "vads_order_info2",
    "vads_order_info3",
    "vads_page_action",
    "vads_payment_certificate",
    "vads_payment_config",
    "vads_payment_option_code",
    "vads_payment_seq",
    "vads_payment_src",
    "vads_pays_ip",
    "vads_presentation_date",
    "vads_result",
    "vads_risk_analysis_result",
    "vads_risk_assessment_result",
    "vads_risk_control",
    "vads_sequence_number",
    "vads_ship_to_city",
    "vads_ship_to_country",
    "vads_ship_to_delivery_company_name",
    "vads_ship_to_district",
    "vads_ship_to_first_name",
    "vads_ship_to_last_name",
    "vads_ship_to_legal_name",
    "vads_ship_to_name",
    "vads_ship_to_phone_num",
    "vads_ship_to_speed",
    "vads_ship_to_state",
    "vads_ship_to_status",
    "vads_ship_to_street",
    "vads_ship_to_street2",
    "vads_ship_to_street_number",
    "vads_ship_to_type",
    "vads_ship_to_zip",
    "vads_shop_name",
    "vads_site_id",
    "vads_threeds_auth_type",
    "vads_threeds_cavv",
    "vads_threeds_cavvAlgorithm",
    "vads_threeds_eci",
    "vads_threeds_enrolled",
    "vads_threeds_error_code",
    "vads_threeds_exit_status",
    "vads_threeds_sign_valid",
    "vads_threeds_status",
    "vads_threeds_xid",
    "vads_trans_date",
    "vads_trans_id",
    "vads_trans_status",
    "vads_trans_uuid",
    "vads_url_check_src",
    "vads_validation_mode",
    "vads_version",
    "vads_warranty_result",
];

pub const COUNT: usize = NAMES.len();

/// The form keeps a `u128` bit set of the known names it holds.
const _: () = assert!(COUNT <= 128);

/// The key the form sorts by: the first 16 bytes, big-endian,
/// zero-padded (`form::key_of`, here usable in constants).
const fn key(name: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < 16 && i < name.len() {
        bytes[i] = name[i];
        i += 1;
    }
    u128::from_be_bytes(bytes)
}

/// `a < b` byte-wise.
const fn less(a: &[u8], b: &[u8]) -> bool {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

const fn equal(a: &[u8], b: &[u8]) -> bool {
    !less(a, b) && !less(b, a)
}

const _: () = {
    let mut i = 1;
    while i < COUNT {
        assert!(less(NAMES[i - 1].as_bytes(), NAMES[i].as_bytes()));
        i += 1;
    }
};

/// The keys of [`NAMES`], by number.
pub const KEYS: [u128; COUNT] = {
    let mut keys = [0u128; COUNT];
    let mut i = 0;
    while i < COUNT {
        keys[i] = key(NAMES[i].as_bytes());
        i += 1;
    }
    keys
};

/// The number of a known name, at compile time (a name not in the list
/// does not compile).
pub const fn id(name: &str) -> Id {
    let mut i = 0;
    while i < COUNT {
        if equal(NAMES[i].as_bytes(), name.as_bytes()) {
            return i as Id;
        }
        i += 1;
    }
    panic!("not a known name")
}

/// Open addressing, linear probing, a fifth full: almost every lookup
/// is one probe. Entries are `number + 1`, 0 for empty.
const SLOTS: usize = 512;

const fn hash(key: u128, len: usize) -> usize {
    // Constants picked so that no known name is more than one slot from
    // its hash (`probes_are_short`).
    let mixed = (key as u64) ^ ((key >> 64) as u64).rotate_left(15) ^ len as u64;
    (mixed.wrapping_mul(0xC4CE_B9FE_1A85_EC53) >> (64 - 9)) as usize
}

const TABLE: [u8; SLOTS] = {
    let mut table = [0u8; SLOTS];
    let mut i = 0;
    while i < COUNT {
        let mut slot = hash(KEYS[i], NAMES[i].len());
        while table[slot] != 0 {
            slot = (slot + 1) % SLOTS;
        }
        table[slot] = (i + 1) as u8;
        i += 1;
    }
    table
};

/// The number of `name`, whose key is `key`, if it is a known name.
///
/// A key and a length decide a name of up to 16 bytes (the key holds all
/// of it); longer names compare their tails too.
pub fn lookup(name: &[u8], key: u128) -> Option<Id> {
    let mut slot = hash(key, name.len());
    loop {
        let entry = TABLE[slot];
        if entry == 0 {
            return None;
        }
        let id = entry - 1;
        let known = NAMES[id as usize].as_bytes();
        if KEYS[id as usize] == key
            && known.len() == name.len()
            && (name.len() <= 16 || known[16..] == name[16..])
        {
            return Some(id);
        }
        slot = (slot + 1) % SLOTS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_is_found_and_nothing_else() {
        for (i, name) in NAMES.iter().enumerate() {
            assert_eq!(lookup(name.as_bytes(), key(name.as_bytes())), Some(i as Id));
            assert_eq!(id(name), i as Id);
            for other in [
                format!("{name}\0"),
                format!("{name}x"),
                name[..name.len() - 1].to_owned(),
                name.to_uppercase(),
            ] {
                if NAMES.contains(&other.as_str()) {
                    continue;
                }
                let b = other.as_bytes();
                assert_eq!(lookup(b, key(b)), None, "{other:?}");
            }
        }
        for other in ["", "v", "vads_", "vads_ext_info_session_id", "kr-answer"] {
            assert_eq!(lookup(other.as_bytes(), key(other.as_bytes())), None);
        }
    }

    #[test]
    fn probes_are_short() {
        // Not a correctness rule: a guard against a hash that clusters.
        let longest = NAMES
            .iter()
            .map(|name| {
                let mut slot = hash(key(name.as_bytes()), name.len());
                let mut probes = 1;
                while TABLE[slot] as usize - 1 != id(name) as usize {
                    slot = (slot + 1) % SLOTS;
                    probes += 1;
                }
                probes
            })
            .max()
            .unwrap();
        assert!(longest <= 2, "{longest}");
    }
}
