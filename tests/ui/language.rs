//! The recipients' language from the dashboard's sending settings: set by the
//! tenant through the same use case as `PATCH /customers/{id}` (`locale`),
//! refused when not a language offered; the public pages then speak it.

use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};
use crate::http::signed_in;

#[tokio::test]
async fn a_tenant_chooses_german_for_its_recipients_in_the_sending_settings() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let (other, other_key) = app.verified_tenant("Other", "other.test").await;
    let (s, csrf) = signed_in(&app, &key).await;
    let settings = format!("{}/ui/t/{t}/settings", app.base);
    let page = s.get(settings.clone()).await.text().await.unwrap();
    assert!(page.contains("<option value=\"en\" lang=\"en\" selected>English</option>"), "{page}");

    let language = format!("{settings}/language");
    let r = s.post(language.clone(), &[("csrf", &csrf), ("locale", "de")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/ui/t/{t}/settings?done=language_saved"));
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["locale"], "de", "the API's too");
    let page = s.get(format!("{settings}?done=language_saved")).await.text().await.unwrap();
    assert!(page.contains("<option value=\"de\" lang=\"de\" selected>Deutsch</option>"), "{page}");
    assert!(page.contains("Language saved."), "{page}");

    // Not a language offered, a control character, no token, another tenant: nothing changes.
    for bad in ["fr", "", "de\0", &"x".repeat(10_000)] {
        let r = s.post(language.clone(), &[("csrf", &csrf), ("locale", bad)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    let r = s.post(language.clone(), &[("locale", "en")]).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = s.post(format!("{}/ui/t/{other}/settings/language", app.base), &[("csrf", &csrf), ("locale", "de")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["locale"], "de");
    assert_eq!(app.get(&format!("/customers/{other}"), &other_key).await.body["locale"], "en");
}

/// The settings page, and the preference centre and unsubscribe page of a
/// German tenant, looked at (and photographed) in a browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_tenants_recipients_see_german_pages() {
    let Some(b) = Browser::start("language").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme Newsletter", "mail.acme.example").await;
    let r = app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": "Produktneuigkeiten", "description": "Was wir diesen Monat gebaut haben, einmal im Monat.", "default": "opt_out" })).await;
    let news = r.body["id"].as_str().unwrap().to_owned();
    app.add_contact(&t, &key, json!({ "email": "ada@example.com" })).await;

    b.sign_in(&key).await;
    b.open(&format!("/ui/t/{t}/settings")).await;
    b.wait_title("Sending settings").await;
    b.js_value("document.querySelector('#locale').value = 'de'; return null;").await;
    b.click("#save-language").await;
    b.wait_text(".notice", "Language saved").await;
    b.check_page("settings-language").await;
    b.js_value("document.getElementById('language-h').scrollIntoView(); return null;").await;
    b.photograph("language-section-desktop").await;
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["locale"], "de");

    let sent = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "Hallo", "html": "<p>Hallo</p>", "topic_id": news }),
        )
        .await;
    let campaign = sent.body["campaign_id"].as_str().unwrap().to_owned();
    let messages = app.get(&format!("/customers/{t}/campaigns/{campaign}/messages"), &key).await;
    let path = |field: &str| url::Url::parse(messages.body[0][field].as_str().unwrap()).unwrap().path().to_owned();
    b.open(&path("preferences_url")).await;
    b.wait_text("h1", "E-Mail-Einstellungen").await;
    b.check_page("preferences-de").await;
    b.open(&path("unsubscribe_url")).await;
    b.wait_text("h1", "Abmelden").await;
    b.check_page("unsubscribe-de").await;
    b.finish().await;
}
