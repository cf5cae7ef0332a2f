//! Domain authentication, all three records (issue 8, G): mailroom looks up
//! SPF, DKIM, DMARC and the return path itself and tells a tenant what to publish.

use mailroom::mock::{Faults, MockConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options, ADMIN_KEY};

fn published(domain: &str, dmarc: Option<&str>) -> Vec<(String, &'static str, String)> {
    let mut records = vec![
        (format!("send.{domain}"), "TXT", "v=spf1 include:amazonses.com ~all".to_owned()),
        (format!("send.{domain}"), "MX", "feedback-smtp.us-east-1.amazonses.com".to_owned()),
        (format!("resend._domainkey.{domain}"), "TXT", "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDsandbox".to_owned()),
    ];
    if let Some(d) = dmarc {
        records.push((format!("_dmarc.{domain}"), "TXT", d.to_owned()));
    }
    records
}

// Fails on the old main: no DMARC record suggested, no checks, no warning.
#[tokio::test]
async fn without_dmarc_the_record_to_publish_is_suggested_and_sends_carry_a_warning() {
    let app = spawn_with(Options { dns: published("acme.com", None), ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let status = app.get(&format!("/customers/{t}/domains/status"), &key).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let checks = &status.body["checks"];
    assert_eq!(checks["spf"]["status"], "ok", "{checks}");
    assert_eq!(checks["dkim"]["status"], "ok", "{checks}");
    assert_eq!(checks["return_path"]["status"], "ok", "{checks}");
    assert_eq!(checks["dmarc"]["status"], "missing", "{checks}");
    let dmarc = status.body["dns_records"].as_array().unwrap().iter().find(|r| r["record"] == "DMARC").cloned();
    let dmarc = dmarc.expect("a DMARC record to publish");
    assert_eq!(dmarc["name"], "_dmarc.acme.com");
    assert!(dmarc["value"].as_str().unwrap().starts_with("v=DMARC1; p=none"), "{dmarc}");
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let sent = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let warnings = sent.body["warnings"].as_array().cloned().unwrap_or_default();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("DMARC")), "{}", sent.body);
}

#[tokio::test]
async fn a_published_dmarc_policy_is_reported_and_sends_carry_no_warning() {
    let dmarc = "v=DMARC1; p=reject; rua=mailto:d@acme.com";
    let app = spawn_with(Options { dns: published("acme.com", Some(dmarc)), ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let status = app.get(&format!("/customers/{t}/domains/status"), &key).await;
    let check = &status.body["checks"]["dmarc"];
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(check["policy"], "reject");
    assert_eq!(check["found"], json!([dmarc]));
    assert!(status.body["dns_records"].as_array().unwrap().iter().all(|r| r["record"] != "DMARC"));
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let sent = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert!(sent.body.get("warnings").is_none(), "{}", sent.body);
}

#[tokio::test]
async fn a_dns_server_that_does_not_answer_makes_records_unknown_not_an_error() {
    let app =
        spawn_with(Options { env: vec![("MAILROOM_DNS_RESOLVER".into(), "127.0.0.1:9".into())], ..Options::default() })
            .await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let status = app.get(&format!("/customers/{t}/domains/status"), &key).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["checks"]["dmarc"]["status"], "unknown", "{}", status.body);
    assert!(status.body["checks"]["spf"]["reason"].is_string());
}

#[tokio::test]
async fn a_sending_only_resend_key_is_named_as_the_cause() {
    let faults = Faults { domain_key_restricted: true, ..Faults::default() };
    let app = spawn_with(Options {
        resend: true,
        mock: MockConfig { faults, ..MockConfig::default() },
        ..Options::default()
    })
    .await;
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": "A" })).await.body["id"].as_str().unwrap().to_owned();
    let key = app.post(&format!("/customers/{c}/api-keys"), ADMIN_KEY, json!({})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.post(&format!("/customers/{c}/domains"), &key, json!({ "domain_name": "acme.com" })).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "provider_key_restricted");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("sending access only"), "{}", r.body);
}
