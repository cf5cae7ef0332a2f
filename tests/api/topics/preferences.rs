//! The preference centre (`/p/{token}`): every topic with the recipient's
//! state, "unsubscribe from all", one save; in the tenant's language; linked
//! from every campaign email.

use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{standing, topic};
use crate::helpers::{spawn_with, Options, TestApp};

struct Sent {
    app: TestApp,
    t: String,
    key: String,
    contact: String,
    news: String,
    offers: String,
}

/// A tenant with two topics (News opt-out, Offers opt-in), one contact, and a
/// campaign `body` sent to it.
async fn sent(body: Value) -> Sent {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news =
        topic(&app, &t, &key, json!({ "name": "News", "description": "Product news, monthly", "default": "opt_out" }))
            .await;
    let offers = topic(&app, &t, &key, json!({ "name": "Offers", "default": "opt_in" })).await;
    let contact = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    Sent { app, t, key, contact, news, offers }
}

fn email(app: &TestApp) -> mailroom::mock::AcceptedEmail {
    app.mock().accepted().into_iter().find(|e| e.to[0] == "pat@example.org").expect("an email to pat")
}

/// The path (`/p/...`) of the preference centre: the one-click link's token.
fn preferences_path(app: &TestApp) -> String {
    let header = email(app).headers.get("List-Unsubscribe").expect("List-Unsubscribe").clone();
    let url = url::Url::parse(header.trim_start_matches('<').trim_end_matches('>')).expect("a URL");
    url.path().replacen("/u/", "/p/", 1)
}

async fn get_page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn post_form(app: &TestApp, path: &str, content_type: &str, body: String) -> (StatusCode, String) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

const FORM: &str = "application/x-www-form-urlencoded";

fn is_checked(page: &str, id: &str) -> bool {
    page.contains(&format!("name=\"topic\" value=\"{id}\" checked"))
}

#[tokio::test]
async fn the_preference_centre_shows_each_topic_as_the_contact_stands_and_a_get_changes_nothing() {
    let s = sent(json!({ "subject": "s", "html": "<p>h</p>" })).await;
    let path = preferences_path(&s.app);
    let (status, page) = get_page(&s.app, &path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<strong>Acme</strong>"), "the tenant's name: {page}");
    assert!(page.contains("Product news, monthly"), "the topic's description: {page}");
    assert!(is_checked(&page, &s.news), "News is opt-out: subscribed: {page}");
    assert!(!is_checked(&page, &s.offers), "Offers is opt-in: not subscribed: {page}");
    assert!(page.contains("name=\"all\""), "{page}");
    assert!(page.contains("<meta name=\"robots\" content=\"noindex\">"), "{page}");
    assert!(!page.contains("<script"), "works without JavaScript");
    let at_default = |n: &str, st: &str| (n.to_owned(), st.to_owned(), true);
    assert_eq!(
        standing(&s.app, &s.t, &s.key, &s.contact).await,
        [at_default("News", "subscribed"), at_default("Offers", "unsubscribed")],
        "a GET changes nothing"
    );
}

#[tokio::test]
async fn saving_the_preference_centre_sets_every_topic_shown_and_can_leave_everything() {
    let s = sent(json!({ "subject": "s", "html": "<p>h</p>" })).await;
    let path = preferences_path(&s.app);
    let (status, page) =
        post_form(&s.app, &path, FORM, format!("shown={0}&shown={1}&topic={1}", s.news, s.offers)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Saved."), "{page}");
    assert!(!is_checked(&page, &s.news) && is_checked(&page, &s.offers), "the page as it now stands: {page}");
    let chose = |n: &str, st: &str| (n.to_owned(), st.to_owned(), false);
    assert_eq!(
        standing(&s.app, &s.t, &s.key, &s.contact).await,
        [chose("News", "unsubscribed"), chose("Offers", "subscribed")]
    );
    let contact = s.app.get(&format!("/customers/{}/contacts/{}", s.t, s.contact), &s.key).await;
    assert_eq!(contact.body["status"], "subscribed", "{}", contact.body);

    // Unsubscribe from all: the contact is unsubscribed, and the page says a
    // topic ticked later does not subscribe it again.
    let (status, page) = post_form(&s.app, &path, FORM, format!("shown={0}&topic={0}&all=1", s.offers)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let contact = s.app.get(&format!("/customers/{}/contacts/{}", s.t, s.contact), &s.key).await;
    assert_eq!(contact.body["status"], "unsubscribed", "{}", contact.body);
    assert!(page.contains("only confirming a new signup does"), "{page}");
    assert!(!page.contains("name=\"all\""), "nothing more to leave: {page}");
    let (_, page) =
        post_form(&s.app, &path, FORM, format!("shown={0}&topic={0}&shown={1}&topic={1}", s.news, s.offers)).await;
    assert!(page.contains("Saved."), "{page}");
    let contact = s.app.get(&format!("/customers/{}/contacts/{}", s.t, s.contact), &s.key).await;
    assert_eq!(contact.body["status"], "unsubscribed", "topics never lift a global unsubscribe: {}", contact.body);
}

#[tokio::test]
async fn a_forged_token_or_a_form_the_page_did_not_send_is_refused_with_a_page() {
    let s = sent(json!({ "subject": "s", "html": "<p>h</p>" })).await;
    let path = preferences_path(&s.app);
    let mut forged = path.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for p in [forged.as_str(), "/p/not-a-token", "/p/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let (status, page) = get_page(&s.app, p).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
        assert!(page.contains("<html") && page.contains("not valid"), "{page}");
        assert_eq!(post_form(&s.app, p, FORM, "all=1".into()).await.0, StatusCode::NOT_FOUND, "{p}");
    }
    let json = post_form(&s.app, &path, "application/json", "{\"all\":1}".into()).await;
    assert_eq!(json.0, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", json.1);
    let unknown = post_form(&s.app, &path, FORM, "all=1&everything=1".into()).await;
    assert_eq!(unknown.0, StatusCode::UNPROCESSABLE_ENTITY, "an unknown field: {}", unknown.1);
    let not_shown = post_form(&s.app, &path, FORM, format!("topic={}", s.news)).await;
    assert_eq!(not_shown.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", not_shown.1);
    let bad_id = post_form(&s.app, &path, FORM, "shown=x%00y".into()).await;
    assert_eq!(bad_id.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad_id.1);
    let cross = s
        .app
        .http
        .post(format!("{}{path}", s.app.base))
        .header("content-type", FORM)
        .header("sec-fetch-site", "cross-site")
        .body("all=1")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let contact = s.app.get(&format!("/customers/{}/contacts/{}", s.t, s.contact), &s.key).await;
    assert_eq!(contact.body["status"], "subscribed", "nothing refused changed anything: {}", contact.body);
}

#[tokio::test]
async fn a_german_tenant_s_recipients_get_german_pages() {
    let s = sent(json!({ "subject": "s", "html": "<p>h</p>" })).await;
    let bad = s.app.patch(&format!("/customers/{}", s.t), &s.key, json!({ "locale": "fr" })).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let r = s.app.patch(&format!("/customers/{}", s.t), &s.key, json!({ "locale": "de" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["locale"], "de");
    let path = preferences_path(&s.app);
    let (_, page) = get_page(&s.app, &path).await;
    assert!(
        page.contains("lang=\"de\"") && page.contains("E-Mail-Einstellungen") && page.contains("Speichern"),
        "{page}"
    );
    let (_, page) = post_form(&s.app, &path, FORM, String::new()).await;
    assert!(page.contains("Gespeichert."), "{page}");
    let (_, page) = get_page(&s.app, &path.replacen("/p/", "/u/", 1)).await;
    assert!(page.contains("lang=\"de\"") && page.contains("Abmelden"), "{page}");
}

#[tokio::test]
async fn a_campaign_email_links_to_its_preference_centre_in_html_text_and_footer() {
    let s = sent(json!({ "subject": "s", "html": "<p>Hello</p>", "text": "Hello" })).await;
    let path = preferences_path(&s.app);
    let mail = email(&s.app);
    let html = mail.html.unwrap();
    let text = mail.text.unwrap();
    assert!(html.contains(&format!("{path}\"")), "the footer links the preference centre: {html}");
    assert!(html.contains(&format!("{}\"", path.replacen("/p/", "/u/", 1))), "and unsubscribe: {html}");
    assert!(text.contains(&format!("Preferences: {}{path}", s.app.base)) || text.contains(&path), "{text}");
    assert!(text.contains("Unsubscribe: "), "{text}");
    let messages = s.app.get(&format!("/customers/{}/campaigns", s.t), &s.key).await;
    let campaign = messages.body[0]["id"].as_str().unwrap().to_owned();
    let listed = s.app.get(&format!("/customers/{}/campaigns/{campaign}/messages", s.t), &s.key).await;
    assert!(listed.body[0]["preferences_url"].as_str().unwrap().ends_with(&path), "{}", listed.body);
}

#[tokio::test]
async fn a_template_that_places_its_own_unsubscribe_link_still_gets_a_preferences_link() {
    let html = "<p>Hi</p><p><a href=\"{{ unsubscribe_url }}\">Leave</a></p>";
    let s = sent(json!({ "subject": "s", "html": html })).await;
    let path = preferences_path(&s.app);
    let unsubscribe = path.replacen("/p/", "/u/", 1);
    let got = email(&s.app).html.unwrap();
    assert_eq!(got.matches(&unsubscribe).count(), 1, "its own unsubscribe link, no second one: {got}");
    assert!(got.contains(&path), "a footer with the preferences link: {got}");

    let both = "<p>Hi</p><a href=\"{{ unsubscribe_url }}\">Leave</a> <a href=\"{{preferences_url}}\">Choose</a>";
    let s = sent(json!({ "subject": "s", "html": both })).await;
    let path = preferences_path(&s.app);
    let got = email(&s.app).html.unwrap();
    assert_eq!(got.matches(&path).count(), 1, "both placed: no footer: {got}");
    assert!(got.ends_with("Choose</a>"), "{got}");
}
