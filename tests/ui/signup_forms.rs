//! Signup forms in the dashboard (Audience → Forms), on a phone: made on
//! its page, a redirect off the customer's hosts refused on the form, and
//! the embeddable snippet, pasted into a page, takes a signup without
//! JavaScript of its own.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_made_in_the_dashboard_takes_a_signup_from_its_snippet_on_a_phone() {
    let Some(b) = Browser::start_phone("forms").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "acme.example").await;
    b.sign_in(&key).await;

    b.open(&format!("/ui/t/{t}/forms")).await;
    b.wait_text("main", "No signup forms yet").await;
    b.check_page("forms").await;
    b.fill("#form-name", "Newsletter").await;
    b.fill("#form-consent", "Yes, send me the news.").await;
    b.click("#form-create").await;
    b.wait_text(".notice", "Signup form created").await;
    b.wait_title("Newsletter").await;
    assert!(b.text("#form-snippet").await.contains("name=\"website\""));
    b.check_page("form").await;

    // A thank-you page off the customer's own hosts is refused, with what was typed kept.
    b.fill("#form-thanks", "https://evil.example/").await;
    b.click("#form-save").await;
    b.wait_text("#form-error", "evil.example").await;
    assert_eq!(
        b.js_value("return document.querySelector('#form-thanks').value;").await,
        json!("https://evil.example/")
    );

    // The snippet, pasted into a page of its own, posts the signup.
    b.open(&format!("/ui/t/{t}/forms")).await;
    b.click("#forms a").await;
    b.wait_title("Newsletter").await;
    let snippet = b.js_value("return document.querySelector('#form-snippet').textContent;").await;
    let html = format!(
        "<!doctype html><html><head><meta name=\"viewport\" content=\"width=device-width\"></head><body>{}</body></html>",
        snippet.as_str().unwrap()
    );
    let script = format!("document.open(); document.write({}); document.close(); return true;", Value::from(html));
    b.js_value(&script).await;
    b.fill("#signup-email", "pat@example.org").await;
    b.click("form button[type=submit]").await;
    b.wait_text("main", "Thank you").await;
    b.wait_text("main", "confirm").await;
    let r = app.get(&format!("/customers/{t}/contacts?email=pat@example.org"), &key).await;
    assert_eq!(r.body[0]["status"], "pending", "{}", r.body);
}
