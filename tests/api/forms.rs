//! Signup forms and double opt-in (issue 23, section 2): a form post makes a
//! pending contact and a confirmation email; the link's GET changes nothing,
//! its POST confirms; pending contacts get no campaign and are forgotten
//! after `MAILROOM_PENDING_DAYS`; honeypot, rate limits, no enumeration, no
//! open redirect; consent records; the API's `double_opt_in`.

use std::time::Duration;

use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, Options, TestApp, ADMIN_KEY};

fn with_mock() -> Options {
    Options { resend: true, ..Options::default() }
}

/// A client that does not follow redirects (the 303s are what is checked).
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn form(app: &TestApp, t: &str, key: &str, body: Value) -> Value {
    let r = app.post(&format!("/customers/{t}/forms"), key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// A plain HTML form post, as a browser sends it: (status, Location, body).
async fn post_form(app: &TestApp, form_id: &str, body: &str) -> (StatusCode, Option<String>, String) {
    let r = no_redirects()
        .post(format!("{}/f/{form_id}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "Mozilla/5.0 (phone)")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (r.status(), location, r.text().await.unwrap())
}

async fn post_json(
    app: &TestApp,
    form_id: &str,
    origin: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = app.http.post(format!("{}/f/{form_id}", app.base)).json(&body);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let r = req.send().await.unwrap();
    let headers = r.headers().clone();
    (r.status(), headers, r.text().await.unwrap())
}

/// The tenant's contact with this address, if any.
async fn contact(app: &TestApp, t: &str, key: &str, email: &str) -> Option<Value> {
    let r = app.get(&format!("/customers/{t}/contacts?email={email}"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body.as_array().unwrap().first().cloned()
}

/// The path (`/c/...`) of the confirmation link in the email to `to`, once it is at the mock.
async fn confirm_link(app: &TestApp, to: &str) -> String {
    app.settle_until("the confirmation email", || async { app.mock().accepted().iter().any(|e| e.to[0] == to) }).await;
    let accepted = app.mock().accepted();
    let email = accepted.iter().find(|e| e.to[0] == to).unwrap();
    let html = email.html.as_deref().unwrap();
    let at = html.find("/c/").expect("a confirmation link");
    let end = html[at..].find('"').unwrap();
    html[at..at + end].to_owned()
}

/// A customer with an API key and no domain yet: (id, key).
async fn customer_without_domain(app: &TestApp, name: &str) -> (String, String) {
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": name })).await;
    let t = c.body["id"].as_str().unwrap().to_owned();
    let key = app.post(&format!("/customers/{t}/api-keys"), ADMIN_KEY, json!({})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    (t, key)
}

async fn history(app: &TestApp, t: &str, key: &str, contact: &str) -> Vec<Value> {
    app.get_all(&format!("/customers/{t}/contacts/{contact}/consent"), key).await
}

fn changes(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r["change"].as_str().unwrap().to_owned(), r["source"].as_str().unwrap().to_owned()))
        .collect()
}

fn pair(change: &str, source: &str) -> (String, String) {
    (change.to_owned(), source.to_owned())
}

#[tokio::test]
async fn a_double_opt_in_form_post_is_pending_until_the_confirmation_page_is_posted() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": "News" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = form(
        &app,
        &t,
        &key,
        json!({
            "name": "Newsletter", "topic_ids": [news], "tags": ["web"], "consent_text": "Yes, send me the news.",
            "redirect_hosts": ["www.acme.com"], "thank_you_url": "https://www.acme.com/thanks",
            "confirmed_url": "https://www.acme.com/welcome"
        }),
    )
    .await;
    assert_eq!(f["double_opt_in"], true, "double opt-in is the default");
    assert_eq!(f["action_url"], format!("{}/f/{}", app.base, f["id"].as_str().unwrap()));
    let id = f["id"].as_str().unwrap();
    // Someone already subscribed, so that a campaign has an audience.
    app.add_contact(&t, &key, json!({ "email": "sam@example.org" })).await;

    let (status, location, _) = post_form(&app, id, "email=pat%40example.org&first_name=Pat&website=").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("https://www.acme.com/thanks"));
    let pat = contact(&app, &t, &key, "pat@example.org").await.expect("a contact");
    assert_eq!(pat["status"], "pending");
    assert_eq!(pat["is_subscribed"], false);
    let pat_id = pat["id"].as_str().unwrap().to_owned();

    // The confirmation email, from the starter template.
    let link = confirm_link(&app, "pat@example.org").await;
    let mail = app.mock().accepted().into_iter().find(|e| e.to[0] == "pat@example.org").unwrap();
    assert_eq!(mail.subject, "Confirm your subscription to Acme");
    assert!(!mail.headers.contains_key("List-Unsubscribe"), "transactional mail: {:?}", mail.headers);

    // A campaign to everyone does not reach the pending contact.
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "News", "html": "<p>hi</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["sent_to"], 1, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    app.settle().await;
    let to_pat = app.mock().accepted().iter().filter(|e| e.to[0].eq_ignore_ascii_case("pat@example.org")).count();
    assert_eq!(to_pat, 1, "only the confirmation email");

    // The link's GET shows a button and changes nothing.
    let page = app.http.get(format!("{}{link}", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("method=\"post\"") && html.contains("Confirm"), "{html}");
    assert_eq!(contact(&app, &t, &key, "pat@example.org").await.unwrap()["status"], "pending");

    // A forged link is a 404, on GET and POST.
    let forged = format!("{}/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", app.base);
    assert_eq!(app.http.get(&forged).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(no_redirects().post(&forged).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(contact(&app, &t, &key, "pat@example.org").await.unwrap()["status"], "pending");

    // Only the POST confirms: subscribed, with the form's topic and tag.
    let r = no_redirects()
        .post(format!("{}{link}", app.base))
        .header("user-agent", "Mozilla/5.0 (confirming)")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "https://www.acme.com/welcome");
    let pat = contact(&app, &t, &key, "pat@example.org").await.unwrap();
    assert_eq!(pat["status"], "subscribed");
    assert_eq!(pat["tags"], json!(["web"]));
    let topics = app.get(&format!("/customers/{t}/contacts/{pat_id}/topics"), &key).await;
    assert_eq!(topics.body[0]["state"], "subscribed", "{}", topics.body);

    // The history: created at the post, confirmed at the POST (each with the
    // statement and the person's client), then the topic.
    let records = history(&app, &t, &key, &pat_id).await;
    assert_eq!(
        changes(&records),
        [pair("topic_subscribed", "form"), pair("confirmed", "form"), pair("created", "form")]
    );
    for r in &records {
        assert_eq!(r["form_id"], id);
        assert_eq!(r["consent_text"], "Yes, send me the news.");
        assert_eq!(r["consent_text_version"], "1");
    }
    assert_eq!(records[1]["client"]["user_agent"], "Mozilla/5.0 (confirming)");
    assert_eq!(records[2]["client"]["user_agent"], "Mozilla/5.0 (phone)");
    assert_eq!(records[2]["client"]["ip"], "127.0.0.1");

    // Confirming again changes nothing more; the next campaign reaches Pat.
    let again = no_redirects().post(format!("{}{link}", app.base)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(history(&app, &t, &key, &pat_id).await.len(), 3);
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "More", "html": "<p>hi</p>" })).await;
    assert_eq!(r.body["sent_to"], 2, "{}", r.body);
}

#[tokio::test]
async fn without_double_opt_in_a_signup_is_subscribed_at_once_with_the_forms_topics() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": "News" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = form(&app, &t, &key, json!({ "name": "Quick", "double_opt_in": false, "topic_ids": [news] })).await;
    let (status, _, page) = post_form(&app, f["id"].as_str().unwrap(), "email=kim%40example.org").await;
    assert_eq!(status, StatusCode::OK, "the built-in thank-you page");
    assert!(page.contains("Thank you"), "{page}");
    let kim = contact(&app, &t, &key, "kim@example.org").await.unwrap();
    assert_eq!(kim["status"], "subscribed");
    let records = history(&app, &t, &key, kim["id"].as_str().unwrap()).await;
    assert_eq!(changes(&records), [pair("topic_subscribed", "form"), pair("created", "form")]);
}

#[tokio::test]
async fn a_filled_honeypot_is_answered_as_a_success_and_does_nothing() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "Newsletter" })).await;
    let id = f["id"].as_str().unwrap();
    let human = post_form(&app, id, "email=pat%40example.org&website=").await;
    let bot = post_form(&app, id, "email=bot%40example.org&website=http%3A%2F%2Fspam.example").await;
    assert_eq!((bot.0, bot.1, bot.2), (human.0, human.1, human.2));
    assert!(contact(&app, &t, &key, "bot@example.org").await.is_none());
    let repeated = post_form(&app, id, "email=bot3%40example.org&website=x&website=").await;
    assert_eq!(repeated.0, human.0);
    assert!(contact(&app, &t, &key, "bot3@example.org").await.is_none(), "filled once is filled");
    let (status, _, body) = post_json(&app, id, None, json!({ "email": "bot2@example.org", "website": "x" })).await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, r#"{"status":"accepted"}"#));
    assert!(contact(&app, &t, &key, "bot2@example.org").await.is_none());
    assert!(contact(&app, &t, &key, "pat@example.org").await.is_some());
}

#[tokio::test]
async fn the_answer_is_the_same_for_a_new_a_pending_and_a_known_address() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "known@example.org" })).await;
    let f = form(&app, &t, &key, json!({ "name": "Newsletter", "tags": ["web"] })).await;
    let id = f["id"].as_str().unwrap();
    let new = post_json(&app, id, None, json!({ "email": "new@example.org" })).await;
    let pending = post_json(&app, id, None, json!({ "email": "new@example.org" })).await;
    let known = post_json(&app, id, None, json!({ "email": "known@example.org" })).await;
    for (status, _, body) in [&new, &pending, &known] {
        assert_eq!(*status, StatusCode::ACCEPTED);
        assert_eq!(body, r#"{"status":"accepted"}"#);
    }
    let forms: Vec<_> = [
        post_form(&app, id, "email=other%40example.org").await,
        post_form(&app, id, "email=other%40example.org").await,
        post_form(&app, id, "email=known%40example.org").await,
    ]
    .into_iter()
    .collect();
    assert!(forms.windows(2).all(|w| w[0] == w[1]), "{forms:?}");
    // The known contact is as it was: a stranger's post adds no tag before a confirmation.
    let known = contact(&app, &t, &key, "known@example.org").await.unwrap();
    assert_eq!(known["status"], "subscribed");
    assert_eq!(known["tags"], json!([]));
}

#[tokio::test]
async fn signups_are_rate_limited_per_address_and_per_client() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "Newsletter", "double_opt_in": false })).await;
    let id = f["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(post_form(&app, id, "email=pat%40example.org").await.0, StatusCode::OK);
    }
    let (status, headers, body) = post_json(&app, id, None, json!({ "email": "PAT@example.org" })).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "rate_limited");
    assert_eq!(post_form(&app, id, "email=pat%40example.org").await.0, StatusCode::TOO_MANY_REQUESTS);

    // 20 an hour from one client: 3 so far, 17 more, then no more.
    for i in 0..17 {
        let (status, _, body) = post_json(&app, id, None, json!({ "email": format!("p{i}@example.org") })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{i}: {body}");
    }
    let (status, _, _) = post_json(&app, id, None, json!({ "email": "fresh@example.org" })).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(contact(&app, &t, &key, "fresh@example.org").await.is_none());
    // An hour later, both limits have room again.
    app.advance(Duration::from_secs(3601));
    assert_eq!(post_json(&app, id, None, json!({ "email": "fresh@example.org" })).await.0, StatusCode::ACCEPTED);
    assert_eq!(post_json(&app, id, None, json!({ "email": "pat@example.org" })).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_redirect_off_the_customers_own_hosts_is_refused() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let path = format!("/customers/{t}/forms");
    for body in [
        json!({ "name": "F", "thank_you_url": "https://evil.example/phish" }),
        json!({ "name": "F", "confirmed_url": "https://evil.example/phish" }),
        json!({ "name": "F", "redirect_hosts": ["evil.example"] }),
        json!({ "name": "F", "redirect_hosts": ["notacme.com"] }),
        json!({ "name": "F", "thank_you_url": "javascript:alert(1)" }),
        json!({ "name": "F", "redirect_hosts": ["www.acme.com"], "thank_you_url": "https://acme.com/x" }),
    ] {
        let r = app.post(&path, &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "open_redirect", "{body}: {}", r.body);
    }
    // The customer's own domain (the default host) and its subdomains are fine.
    let f = form(&app, &t, &key, json!({ "name": "F", "thank_you_url": "https://acme.com/thanks" })).await;
    assert_eq!(f["redirect_hosts"], json!(["acme.com"]));
    let id = f["id"].as_str().unwrap();
    let r = app.patch(&format!("{path}/{id}"), &key, json!({ "confirmed_url": "https://evil.example/" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app
        .patch(
            &format!("{path}/{id}"),
            &key,
            json!({ "redirect_hosts": ["go.acme.com"], "thank_you_url": "https://go.acme.com/t" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn forms_are_managed_per_customer_and_the_consent_text_is_versioned() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (t2, key2) = app.verified_tenant("Other", "other.com").await;
    let path = format!("/customers/{t}/forms");
    let f = form(&app, &t, &key, json!({ "name": "A", "consent_text": "v1 text" })).await;
    let id = f["id"].as_str().unwrap();
    assert_eq!(f["consent_text_version"], 1);
    assert!(f["template_id"].is_string(), "the starter confirmation template: {f}");
    form(&app, &t, &key, json!({ "name": "B" })).await;
    let r = app.patch(&format!("{path}/{id}"), &key, json!({ "name": "A2" })).await;
    assert_eq!(r.body["consent_text_version"], 1, "the same text, the same version");
    let r = app.patch(&format!("{path}/{id}"), &key, json!({ "consent_text": "v2 text" })).await;
    assert_eq!((r.body["consent_text_version"].clone(), r.body["name"].clone()), (json!(2), json!("A2")));
    // Paged like topics.
    let page = app.get(&format!("{path}?limit=1"), &key).await;
    assert_eq!(page.body.as_array().unwrap().len(), 1);
    assert!(page.next_page().is_some());
    assert_eq!(app.get_all(&path, &key).await.len(), 2);
    // Hostile input.
    let r = app.post(&path, &key, json!({ "name": "C", "nmae": "typo" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("nmae"), "{}", r.body);
    let r = app.post(&path, &key, json!({ "name": "C\u{0}" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.post(&path, &key, json!({ "name": "C", "consent_text": "a\u{7}b" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.post(&path, &key, json!({ "name": "C", "allowed_origins": ["https://x.example/path"] })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.post(&path, &key, json!({ "name": "C", "topic_ids": ["0190c2a0-0000-7000-8000-000000000000"] })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Another customer's form is not found, by key or by path.
    assert_eq!(app.get(&format!("{path}/{id}"), &key2).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{t2}/forms/{id}"), &key2).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.patch(&format!("/customers/{t2}/forms/{id}"), &key2, json!({})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&format!("/customers/{t2}/forms/{id}"), &key2).await.status, StatusCode::NOT_FOUND);
    // Deleted: its public endpoint is gone.
    assert_eq!(app.delete(&format!("{path}/{id}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(post_form(&app, id, "email=a%40example.org").await.0, StatusCode::NOT_FOUND);
    assert_eq!(post_json(&app, id, None, json!({ "email": "a@example.org" })).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn json_signups_take_cors_only_from_the_forms_allowed_origins() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "F", "allowed_origins": ["https://www.acme.com"] })).await;
    let id = f["id"].as_str().unwrap();
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/f/{id}", app.base))
        .header("origin", "https://www.acme.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://www.acme.com");
    let other = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/f/{id}", app.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let (status, headers, _) =
        post_json(&app, id, Some("https://www.acme.com"), json!({ "email": "a@example.org" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["access-control-allow-origin"], "https://www.acme.com");
    let (status, _, _) = post_json(&app, id, Some("https://evil.example"), json!({ "email": "b@example.org" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(contact(&app, &t, &key, "b@example.org").await.is_none());
    // Hostile JSON: unknown fields, NUL, not an address, not JSON, another type.
    for body in [
        json!({ "email": "c@example.org", "role": "admin" }),
        json!({ "email": "c\u{0}@example.org" }),
        json!({ "email": "nope" }),
    ] {
        let (status, _, body) = post_json(&app, id, None, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let r = app
        .http
        .post(format!("{}/f/{id}", app.base))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .post(format!("{}/f/{id}", app.base))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(post_form(&app, id, "email=x%00y").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(post_form(&app, "not-an-id", "email=a%40example.org").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unconfirmed_pending_contacts_are_forgotten_after_the_pending_days() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "F" })).await;
    let id = f["id"].as_str().unwrap();
    // A known contact's signup waits for its confirmation too.
    app.add_contact(&t, &key, json!({ "email": "known@example.org" })).await;
    post_form(&app, id, "email=Old.One%40example.org&first_name=Olive").await;
    post_form(&app, id, "email=known%40example.org").await;
    let old = contact(&app, &t, &key, "old.one@example.org").await.unwrap();
    assert_eq!(old["status"], "pending");
    let old_link = confirm_link(&app, "Old.One@example.org").await;
    let known_link = confirm_link(&app, "known@example.org").await;
    // The confirmation's delivery is stored, as Resend reports it.
    let sent = app.mock().accepted().iter().find(|e| e.to[0] == "Old.One@example.org").unwrap().id.clone();
    let delivered = crate::helpers::event("email.delivered", &sent, json!({ "to": ["Old.One@example.org"] }));
    assert_eq!(app.webhook("msg_old_delivered", &delivered).await.status, StatusCode::OK);
    app.settle().await;
    assert!(!crate::erase::rows_naming(&app, "old.one@example.org").await.is_empty());

    app.advance(Duration::from_secs(6 * 86_400));
    post_form(&app, id, "email=young%40example.org").await;
    app.advance(Duration::from_secs(86_400 + 60));
    app.settle().await;
    assert!(contact(&app, &t, &key, "old.one@example.org").await.is_none(), "forgotten after 7 days");
    assert_eq!(contact(&app, &t, &key, "young@example.org").await.unwrap()["status"], "pending");
    // Nothing holds the forgotten address in clear: not the confirmation
    // email's message, request or events.
    assert_eq!(crate::erase::rows_naming(&app, "old.one@example.org").await, []);
    assert_eq!(crate::erase::rows_naming(&app, "olive").await, []);
    // Neither link confirms any more: the pending contact is gone, and the
    // known contact's signup expired with it.
    for link in [old_link, known_link] {
        let page = app.http.get(format!("{}{link}", app.base)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{link}");
        let r = app.http.post(format!("{}{link}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{link}");
    }
    // The address may sign up again.
    post_form(&app, id, "email=old.one%40example.org").await;
    assert_eq!(contact(&app, &t, &key, "old.one@example.org").await.unwrap()["status"], "pending");
}

#[tokio::test]
async fn the_apis_double_opt_in_adds_a_pending_contact_that_confirms_from_its_email() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app
        .post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "lee@example.org", "double_opt_in": true }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let again = app
        .post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "LEE@example.org", "double_opt_in": true }))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let link = confirm_link(&app, "lee@example.org").await;
    let r = app.http.post(format!("{}{link}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("subscribed"));
    assert_eq!(contact(&app, &t, &key, "lee@example.org").await.unwrap()["status"], "subscribed");
    assert_eq!(changes(&history(&app, &t, &key, &id).await), [pair("confirmed", "api"), pair("created", "api")]);
    // The page speaks the customer's language.
    let r = app.patch(&format!("/customers/{t}"), &key, json!({ "locale": "de" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = app.http.get(format!("{}{link}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Abonnement bestätigt") && page.contains("lang=\"de\""), "{page}");
    // Without a verified domain the email cannot go: refused before anything is written.
    let c = app.post("/customers", crate::helpers::ADMIN_KEY, json!({ "name": "NoDomain" })).await;
    let t3 = c.body["id"].as_str().unwrap();
    let k3 = app.post(&format!("/customers/{t3}/api-keys"), crate::helpers::ADMIN_KEY, json!({})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(&format!("/customers/{t3}/contacts"), &k3, json!({ "email": "a@example.org", "double_opt_in": true }))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(contact(&app, t3, &k3, "a@example.org").await.is_none());
}

#[tokio::test]
async fn only_a_confirmed_double_opt_in_lifts_a_global_unsubscribe_and_an_erasures_suppression() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "F" })).await;
    let quick = form(&app, &t, &key, json!({ "name": "Quick", "double_opt_in": false })).await;
    let id = f["id"].as_str().unwrap();
    // Unsubscribed (contact and suppression), and an erased address.
    app.add_contact(&t, &key, json!({ "email": "ann@example.org" })).await;
    let ann = contact(&app, &t, &key, "ann@example.org").await.unwrap();
    let r = app
        .patch(
            &format!("/customers/{t}/contacts/{}", ann["id"].as_str().unwrap()),
            &key,
            json!({ "is_subscribed": false }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for (email, reason) in [("ann@example.org", "unsubscribed"), ("eve@example.org", "erased")] {
        app.store
            .execute_raw(&format!(
                "INSERT INTO suppressions (tenant_id, email_normalized, reason, source, created_at) VALUES ('{t}', '{email}', '{reason}', 'test', 0)"
            ))
            .await
            .unwrap();
    }
    // A form without double opt-in changes neither.
    post_form(&app, quick["id"].as_str().unwrap(), "email=ann%40example.org").await;
    assert_eq!(contact(&app, &t, &key, "ann@example.org").await.unwrap()["status"], "unsubscribed");
    let suppressed = |app: &TestApp| {
        let t = t.clone();
        let key = key.clone();
        let app_base = app.base.clone();
        let http = app.http.clone();
        async move {
            let r = http.get(format!("{app_base}/customers/{t}/suppressions")).bearer_auth(&key).send().await.unwrap();
            let body: Value = r.json().await.unwrap();
            body.as_array().unwrap().iter().map(|s| s["email"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(suppressed(&app).await.len(), 2);
    // Double opt-in: the confirmation goes to both; confirming lifts both.
    post_form(&app, id, "email=ann%40example.org").await;
    post_form(&app, id, "email=eve%40example.org").await;
    assert_eq!(
        contact(&app, &t, &key, "ann@example.org").await.unwrap()["status"],
        "unsubscribed",
        "not before confirming"
    );
    for who in ["ann@example.org", "eve@example.org"] {
        let link = confirm_link(&app, who).await;
        let r = app.http.post(format!("{}{link}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(contact(&app, &t, &key, who).await.unwrap()["status"], "subscribed", "{who}");
    }
    assert!(suppressed(&app).await.is_empty());
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.body["sent_to"], 2, "{}", r.body);
}

#[tokio::test]
async fn an_erased_address_signing_up_on_a_form_without_double_opt_in_is_not_mailed_until_it_confirms() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let quick = form(&app, &t, &key, json!({ "name": "Quick", "double_opt_in": false })).await;
    let confirmed = form(&app, &t, &key, json!({ "name": "Confirmed" })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "eve@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/contacts/{c}/erase"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    post_form(&app, quick["id"].as_str().unwrap(), "email=eve%40example.org").await;
    assert_eq!(contact(&app, &t, &key, "eve@example.org").await.unwrap()["status"], "subscribed");
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.body["error"]["code"], "no_recipients", "the erasure's suppression holds: {}", r.body);

    post_form(&app, confirmed["id"].as_str().unwrap(), "email=eve%40example.org").await;
    let link = confirm_link(&app, "eve@example.org").await;
    let r = app.http.post(format!("{}{link}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.body["sent_to"], 1, "a confirmed signup lifts it: {}", r.body);
}

#[tokio::test]
async fn a_single_opt_in_post_never_undoes_a_known_contacts_choice_to_leave_a_topic() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let topic = |name: &'static str| {
        let (app, t, key) = (&app, t.clone(), key.clone());
        async move {
            app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": name })).await.body["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (news, offers) = (topic("News").await, topic("Offers").await);
    let f = form(&app, &t, &key, json!({ "name": "Quick", "double_opt_in": false, "topic_ids": [news, offers] })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "kim@example.org" })).await;
    let r = app
        .patch(
            &format!("/customers/{t}/contacts/{c}/topics"),
            &key,
            json!({ "topics": [{ "id": news, "state": "unsubscribed" }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    post_form(&app, f["id"].as_str().unwrap(), "email=kim%40example.org").await;
    let r = app.get(&format!("/customers/{t}/contacts/{c}/topics"), &key).await;
    let state = |id: &str| {
        r.body.as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["state"].as_str().unwrap().to_owned()
    };
    assert_eq!(state(&news), "unsubscribed", "the person's own choice stands: {}", r.body);
    assert_eq!(state(&offers), "subscribed", "a topic never answered is added: {}", r.body);
}

#[tokio::test]
async fn a_domain_registered_but_not_verified_is_no_redirect_host() {
    let app = spawn_app().await;
    let (t, key) = customer_without_domain(&app, "Gone phishing").await;
    let d = app.post(&format!("/customers/{t}/domains"), &key, json!({ "domain_name": "evil.com" })).await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
    for body in [
        json!({ "name": "F", "thank_you_url": "https://evil.com/phish", "double_opt_in": false }),
        json!({ "name": "F", "redirect_hosts": ["evil.com"] }),
    ] {
        let r = app.post(&format!("/customers/{t}/forms"), &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "open_redirect", "{body}: {}", r.body);
    }
}

#[tokio::test]
async fn parallel_posts_of_one_address_never_get_past_its_limit() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "Newsletter" })).await;
    let id = f["id"].as_str().unwrap().to_owned();
    let posts = (0..20).map(|_| {
        let (app, id) = (&app, id.clone());
        async move { post_json(app, &id, None, json!({ "email": "pat@example.org" })).await.0 }
    });
    let answers = futures::future::join_all(posts).await;
    let accepted = answers.iter().filter(|s| **s == StatusCode::ACCEPTED).count();
    let limited = answers.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((accepted, limited), (3, 17), "{answers:?}");
}

#[tokio::test]
async fn a_post_without_an_address_is_refused_even_with_the_honeypot_filled() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "Newsletter" })).await;
    let id = f["id"].as_str().unwrap();
    for body in ["first_name=x&website=null", "website=x", "email=not-an-address&website=x"] {
        let (status, _, _) = post_form(&app, id, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

#[tokio::test]
async fn a_double_opt_in_form_takes_no_signup_while_its_confirmation_cannot_be_sent() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = customer_without_domain(&app, "Early").await;
    let doi = form(&app, &t, &key, json!({ "name": "Confirmed" })).await;
    let doi = doi["id"].as_str().unwrap();
    let single = form(&app, &t, &key, json!({ "name": "Quick", "double_opt_in": false })).await;
    let single = single["id"].as_str().unwrap();

    // No domain yet, then one registered but not verified: refused, nothing written.
    for domain in [None, Some("early.com")] {
        if let Some(d) = domain {
            let r = app.post(&format!("/customers/{t}/domains"), &key, json!({ "domain_name": d })).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let (status, _, page) = post_form(&app, doi, "email=ann%40example.org").await;
        assert_eq!(status, StatusCode::CONFLICT, "{page}");
        assert!(page.contains("does not take signups yet"), "{page}");
        let (status, _, body) = post_json(&app, doi, None, json!({ "email": "ann@example.org" })).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "form_not_ready", "{body}");
        assert!(contact(&app, &t, &key, "ann@example.org").await.is_none());
    }
    // A single opt-in form sends nothing: it takes the signup.
    let (status, _, page) = post_form(&app, single, "email=bob%40example.org").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(contact(&app, &t, &key, "bob@example.org").await.unwrap()["status"], "subscribed");
    // Verified: the same post signs up, and was not counted against the limit before.
    let v = app.post(&format!("/customers/{t}/domains/verify"), &key, json!({})).await;
    assert_eq!(v.body["verified"], true, "{}", v.body);
    for _ in 0..3 {
        let (status, _, page) = post_form(&app, doi, "email=ann%40example.org").await;
        assert_eq!(status, StatusCode::OK, "{page}");
    }
    assert_eq!(contact(&app, &t, &key, "ann@example.org").await.unwrap()["status"], "pending");
    confirm_link(&app, "ann@example.org").await;
}

#[tokio::test]
async fn a_post_giving_two_different_addresses_is_refused() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "F", "double_opt_in": false })).await;
    let id = f["id"].as_str().unwrap();
    let (status, _, page) = post_form(&app, id, "email=ann%40example.org&email=victim%40example.org").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    for email in ["ann@example.org", "victim@example.org"] {
        assert!(contact(&app, &t, &key, email).await.is_none(), "{email}");
    }
    // The same address twice (a form with two fields of that name), in
    // another case, or beside an empty field, is one address.
    for body in [
        "email=ann%40example.org&email=ann%40example.org",
        "email=bob%40example.org&email=BOB%40Example.org",
        "email=&email=cat%40example.org",
        "email=dan%40example.org&email=",
    ] {
        let (status, _, page) = post_form(&app, id, body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {page}");
    }
    for email in ["ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org"] {
        assert!(contact(&app, &t, &key, email).await.is_some(), "{email}");
    }
}

#[tokio::test]
async fn a_post_whose_fields_are_not_utf8_is_refused_not_mended() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(&app, &t, &key, json!({ "name": "F", "double_opt_in": false })).await;
    let id = f["id"].as_str().unwrap();
    for body in ["email=p13%ff%40example.org", "email=ann%40example.org&first_name=An%ffn"] {
        let (status, _, page) = post_form(&app, id, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {page}");
    }
    let raw = no_redirects()
        .post(format!("{}/f/{id}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"email=p14\xff%40example.org".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let all = app.get(&format!("/customers/{t}/contacts"), &key).await;
    assert_eq!(all.body.as_array().unwrap().len(), 0, "{}", all.body);
}

#[tokio::test]
async fn a_redirect_is_followed_only_while_it_is_on_the_customers_verified_domain() {
    let app = spawn_with(with_mock()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let f = form(
        &app,
        &t,
        &key,
        json!({ "name": "F", "redirect_hosts": ["acme.com", "www.acme.com"], "thank_you_url": "https://acme.com/thanks",
                "confirmed_url": "https://www.acme.com/yes" }),
    )
    .await;
    let id = f["id"].as_str().unwrap();
    let (status, location, _) = post_form(&app, id, "email=ann%40example.org").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("https://acme.com/thanks")));
    let link = confirm_link(&app, "ann@example.org").await;

    // The customer moves to another domain: acme.com is not its own any more.
    app.store
        .set_tenant_domain(&mailroom::domain::TenantId::from_stored(t.clone()), "acme.net", "dom_2", "verified", "[]")
        .await
        .unwrap();
    let (status, location, page) = post_form(&app, id, "email=bob%40example.org").await;
    assert_eq!(status, StatusCode::OK, "mailroom's own page: {page}");
    assert_eq!(location, None);
    let r = no_redirects().post(format!("{}{link}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "confirmed, on mailroom's own page");
    assert!(r.headers().get("location").is_none());
    assert_eq!(contact(&app, &t, &key, "ann@example.org").await.unwrap()["status"], "subscribed");
}
