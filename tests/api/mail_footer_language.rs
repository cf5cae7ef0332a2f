//! The footer mailroom adds to campaign mail (unsubscribe and preferences
//! links) speaks the tenant's `locale`, read once per claim with its name.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options};

#[tokio::test]
async fn a_german_tenants_campaign_mail_carries_the_german_footer_and_an_english_ones_the_english() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (de, de_key) = app.verified_tenant("Beispiel GmbH", "beispiel.de").await;
    let (en, en_key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app.patch(&format!("/customers/{de}"), &de_key, json!({ "locale": "de" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["locale"], "de");
    app.add_contact(&de, &de_key, json!({ "email": "anna@example.de" })).await;
    app.add_contact(&en, &en_key, json!({ "email": "ada@example.com" })).await;
    for (t, key) in [(&de, &de_key), (&en, &en_key)] {
        let body = json!({ "subject": "News", "html": "<p>Hallo</p>", "text": "Hallo" });
        let r = app.post(&format!("/customers/{t}/send"), key, body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    app.drain().await;
    let accepted = app.mock().accepted();
    let to = |address: &str| accepted.iter().find(|e| e.to[0] == address).expect("an email to the address").clone();

    let german = to("anna@example.de");
    let html = german.html.unwrap();
    assert!(html.contains("Sie möchten diese E-Mails nicht mehr erhalten?"), "{html}");
    assert!(
        html.contains(">Abmelden</a> oder <a href=\"") && html.contains(">auswählen, welche Sie erhalten</a>"),
        "{html}"
    );
    assert!(!html.contains("Unsubscribe"), "no English: {html}");
    let text = german.text.unwrap();
    assert!(text.contains("\nAbmelden: http") && text.contains("\nEinstellungen: http"), "{text}");
    assert!(!text.contains("Unsubscribe"), "{text}");

    let english = to("ada@example.com");
    let html = english.html.unwrap();
    assert!(html.contains("Don't want these emails?") && html.contains(">Unsubscribe</a> or <a"), "{html}");
    assert!(!html.contains("Abmelden"), "{html}");
    let text = english.text.unwrap();
    assert!(text.contains("\nUnsubscribe: http") && text.contains("\nPreferences: http"), "{text}");

    // Switched back to English: the next campaign's footer follows.
    let r = app.patch(&format!("/customers/{de}"), &de_key, json!({ "locale": "en" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r =
        app.post(&format!("/customers/{de}/send"), &de_key, json!({ "subject": "Zwei", "html": "<p>Hallo</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let again = app.mock().accepted().into_iter().find(|e| e.subject == "Zwei").expect("the second campaign");
    assert!(again.html.unwrap().contains(">Unsubscribe</a>"));
}
