//! A CMOS document is stored once, however many `<Update>`s it carries:
//! storage per request stays bounded by the body limit.

mod support;

use support::daemon::{config, Daemon};

const TOKEN: &str = "cmos-token-0123456789abcdef";

fn cmos_config() -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
[[sources]]
name = "cmos"
kind = "cybersource-cmos"
path = "/ipn/cybersource-cmos"
token = "{TOKEN}"
"#
    )
}

/// A document with `n` case decisions, form-encoded as Cybersource posts it.
fn document(n: usize) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><CaseManagementOrderStatus xmlns="http://reports.cybersource.com/reports/cmos/1.0" MerchantID="ipnsync_demo" Name="Case Management Order Status" Date="2025-03-12 10:31:26 GMT" Version="1.1">"#,
    );
    for i in 0..n {
        xml.push_str(&format!(
            r#"<Update MerchantReferenceNumber="{}" RequestID="47205543294367{i:08}"><OriginalDecision>REVIEW</OriginalDecision><NewDecision>{}</NewDecision><Reviewer>jdoe</Reviewer></Update>"#,
            300_000 + i,
            if i % 2 == 0 { "ACCEPT" } else { "REJECT" },
        ));
    }
    xml.push_str("</CaseManagementOrderStatus>");
    serde_urlencoded::to_string([("content", xml)])
        .unwrap()
        .into_bytes()
}

fn stored_body_bytes(d: &Daemon) -> i64 {
    d.count("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM deliveries")
        + d.count("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM bodies")
}

#[tokio::test]
async fn a_document_with_many_updates_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(&cmos_config(), dir.path())).await;
    let body = document(200);
    assert!(body.len() < 65_536, "within the default body limit");
    let url = d.url(&format!("/ipn/cybersource-cmos?token={TOKEN}"));
    let post = || {
        d.client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 200);
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 200);
    // Once, not 200 times (the adversarial run measured 12.3 MB for 61 KB);
    // compressed, so at most its own size.
    assert_eq!(d.count("SELECT COUNT(*) FROM bodies"), 1);
    let once = stored_body_bytes(&d);
    assert!(once > 0 && once <= body.len() as i64, "{once}");

    // Resent by the platform: 200 duplicate deliveries, no new copy.
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE duplicate = 1"),
        200
    );
    assert_eq!(stored_body_bytes(&d), once);
    // Every delivery still has its body, verbatim.
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries d JOIN bodies b ON b.id = d.body_id"),
        400
    );
    let reader = d.reader();
    let ids: Vec<i64> = reader
        .prepare("SELECT id FROM deliveries")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for id in ids {
        let stored = ipnsync::store::bodies::read_delivery_body(&reader, id)
            .unwrap()
            .unwrap();
        assert_eq!(stored, body);
    }
    drop(reader);
    d.stop().await;

    // `ipnsync show` lists an update's deliveries, not pruned.
    let show = std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["show", "300007", "--json", "--db"])
        .arg(dir.path().join("ipnsync.db"))
        .output()
        .unwrap();
    assert!(show.status.success(), "{show:?}");
    let json: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let deliveries: Vec<&serde_json::Value> = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("body_pruned").is_some())
        .collect();
    assert_eq!(deliveries.len(), 2, "{json:#}");
    assert!(
        deliveries.iter().all(|e| e["body_pruned"] == false),
        "{json:#}"
    );

    // Retention clears the shared copy once no delivery refers to it.
    let mut conn = ipnsync::store::operator::open_operator(&dir.path().join("ipnsync.db")).unwrap();
    let cleared = ipnsync::store::operator::prune_bodies(&mut conn, i64::MAX, false).unwrap();
    assert_eq!(cleared, 400);
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM bodies", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}
