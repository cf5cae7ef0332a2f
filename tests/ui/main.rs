//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against mailroom on port 0 with its own database.
//!
//! Every page visited is checked with axe-core (vendored under `vendor/`: no
//! serious or critical violations), checked to have loaded nothing from any
//! host but mailroom (the browser's proxy is a dead address for every other
//! host, and its resource timings are read back), and photographed at
//! 1280×800 and 390×844 into `target/ui-screenshots/`.
//!
//! Without `chromium` and `chromedriver` on the machine the tests print why
//! and pass: `apt-get install chromium chromium-driver` to run them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod browser;
mod compose_flow;
mod consent_history;
mod contact_page;
mod content;
mod erase;
mod figures;
mod http;
mod language;
mod local_time;
mod manage;
mod nav;
mod preferences;
mod segments;
mod sender;
mod signup_forms;
mod topics;

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use browser::Browser;
use helpers::{spawn_with, Options, ADMIN_KEY};
use mailroom::mock::{Faults, MockConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_in_a_browser_and_stays_on_mailroom() {
    let Some(b) = Browser::start("walkthrough").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);

    // Signed out, every page leads to the login page.
    b.open("/ui/t/00000000-0000-0000-0000-000000000000").await;
    b.wait_title("Sign in").await;
    b.check_page("login").await;

    // The operator signs in, creates two tenants and a key for the first.
    b.sign_in(ADMIN_KEY).await;
    b.wait_title("Tenants").await;
    b.check_page("tenants-empty").await;
    let acme = b.create_tenant("Acme").await;
    let other = b.create_tenant("Other").await;
    b.check_page("tenant-admin").await;
    b.open(&format!("/ui/tenants/{acme}")).await;
    b.fill("#key-name", "dashboard").await;
    b.click("form[action$='/keys'] button").await;
    b.wait_text("#new-key", "New key").await;
    let key = b.text("#issued-key").await;
    assert!(key.starts_with("mr_"), "{key}");
    b.check_page("key-issued").await;
    b.open("/ui/tenants").await;
    b.check_page("tenants").await;
    b.open("/ui/status").await;
    b.check_page("status").await;
    b.open(&format!("/ui/tenants/{other}/delete")).await;
    b.check_page("tenant-delete").await;
    b.sign_out().await;

    // The tenant signs in; the key appears in no URL and no page.
    b.sign_in(&key).await;
    b.wait_title("Acme").await;
    assert!(!b.client().current_url().await.unwrap().as_str().contains(&key));
    assert!(!b.client().source().await.unwrap().contains(&key));
    b.check_page("overview-no-domain").await;

    // Domain: add, then verify (the sandbox verifies at once).
    b.fill("#domain-name", "mail.acme.test").await;
    b.click("form[action$='/domain'] button").await;
    b.wait_text(".notice", "Domain registered").await;
    b.check_page("overview-domain-pending").await;
    b.click("form[action$='/domain/verify'] button").await;
    b.wait_text(".notice", "Domain verified").await;

    // Import a CSV file: the page shows the upload's progress and the result without a reload.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "email,first_name,last_name,tags,plan\nada@example.com,Ada,Lovelace,vip;beta,pro\n\
         grace@example.com,Grace,Hopper,vip,pro\nlinus@example.com,Linus,,beta,free\nnot-an-address,X,,,\n",
    )
    .unwrap();
    b.open(&format!("/ui/t/{acme}/contacts/import")).await;
    b.mark_page().await;
    b.client().find(Locator::Css("#csv-file")).await.unwrap().send_keys(csv.to_str().unwrap()).await.unwrap();
    b.click("#import-form button[type=submit]").await;
    b.wait_text("#import-status", "Done: 3 created").await;
    assert!(b.page_is_marked().await, "the import reloaded the page");
    assert_eq!(b.text("[data-report=rejected]").await, "1");
    b.check_page("import").await;

    // Contacts: the list, a search, one contact's page.
    b.open(&format!("/ui/t/{acme}/contacts")).await;
    b.wait_text("main table", "grace@example.com").await;
    b.check_page("contacts").await;
    b.fill("#q", "grace").await;
    b.click("form[role=search] button").await;
    b.wait_text("main", "1 matching").await;
    b.click("main table a").await;
    b.wait_title("grace@example.com").await;
    b.check_page("contact").await;

    // A dynamic segment, with the live count of its filter.
    b.open(&format!("/ui/t/{acme}/segments")).await;
    b.fill("#seg-name", "VIPs").await;
    b.client().find(Locator::Css("#c0-kind")).await.unwrap().select_by_value("tag").await.unwrap();
    b.fill("#c0-value", "vip").await;
    b.wait_text("[data-count]", "2").await;
    b.check_page("segments-builder").await;
    b.click("#seg-create").await;
    b.wait_text(".notice", "Segment created").await;
    b.check_page("segments").await;

    // A campaign to the segment: compose, confirm the count, send, watch it deliver.
    b.open(&format!("/ui/t/{acme}/campaigns/new")).await;
    b.fill("#subject", "Hello {{first_name}}").await;
    b.click("fieldset input[value^='segment:']").await;
    b.check_page("compose").await;
    b.click("form[action$='/campaigns/confirm'] button[type=submit]").await;
    b.wait_text("h1", "Send to 2 recipients?").await;
    b.check_page("confirm-send").await;
    b.click("#confirm-send").await;
    b.wait_text(".notice", "Campaign queued").await;
    b.mark_page().await;
    b.wait_text("[data-live=delivered_total]", "2").await;
    b.wait_text("[data-live=recipients] tbody", "delivered").await;
    assert!(b.page_is_marked().await, "the counts came by reloading the page");
    b.check_page("campaign").await;
    b.open(&format!("/ui/t/{acme}/campaigns")).await;
    b.check_page("campaigns").await;
    b.open(&format!("/ui/t/{acme}")).await;
    b.check_page("overview").await;

    // A message's timeline, from the campaign's recipients.
    b.open(&format!("/ui/t/{acme}/campaigns")).await;
    b.click("main table a").await;
    b.click("main table a[href*='/messages/']").await;
    b.wait_text(".timeline", "delivered").await;
    b.check_page("message").await;
    b.open(&format!("/ui/t/{acme}/messages")).await;
    b.check_page("messages").await;
    // One transactional email, written on the messages page: its timeline opens.
    b.fill("#send-to", "grace@example.com").await;
    b.fill("#send-subject", "Your reset link").await;
    b.fill("#send-html", "<p>Reset</p>").await;
    b.click("#send-one-form button[type=submit]").await;
    b.wait_text("main", "grace@example.com").await;
    assert!(b.current_path().await.contains("/messages/"), "the new message's page opens");
    // A static segment, and a contact added to it from the contact's page.
    b.open(&format!("/ui/t/{acme}/segments")).await;
    b.fill("#seg-name", "Hand-picked").await;
    b.click("#seg-create").await;
    b.wait_text(".notice", "Segment created").await;
    b.open(&format!("/ui/t/{acme}/contacts?q=grace")).await;
    b.click("main table a").await;
    b.wait_title("grace@example.com").await;
    b.click("form[action$='/segments'] button[value=add]").await;
    b.wait_text(".notice", "Added to the segment").await;
    b.wait_text("#joined-segments", "Hand-picked").await;
    b.check_page("contact-segments").await;
    b.open(&format!("/ui/t/{acme}/dead-letters")).await;
    b.check_page("dead-letters-empty").await;
    // A contact unsubscribed by hand; the suppression list renders.
    b.open(&format!("/ui/t/{acme}/contacts?q=linus")).await;
    b.click("main table a").await;
    b.wait_title("linus@example.com").await;
    b.click("form[action$='/unsubscribe'] button").await;
    b.wait_text(".notice", "Contact unsubscribed").await;
    b.wait_text("main .head", "unsubscribed").await;
    b.open(&format!("/ui/t/{acme}/suppressions")).await;
    b.check_page("suppressions").await;
    b.open(&format!("/ui/t/{acme}/webhooks")).await;
    b.check_page("webhooks").await;
    // Automations: a starter rule switched on from its button, then its (empty) run log.
    b.open(&format!("/ui/t/{acme}/automations")).await;
    b.click("main form[action$='/switch'] button").await;
    b.wait_text(".notice", "Automation switched on").await;
    b.check_page("automations").await;
    b.click("main h2 a").await;
    b.wait_text("main", "No runs yet").await;
    b.check_page("automation").await;

    // Another tenant's pages do not exist for this session.
    for path in [format!("/ui/t/{other}"), format!("/ui/t/{other}/contacts"), "/ui/tenants".to_owned()] {
        assert_eq!(b.status_of(&path).await, 404, "{path}");
    }
    b.open(&format!("/ui/t/{other}/campaigns")).await;
    b.wait_title("Not found").await;

    // A form posted without its CSRF token is refused, and changes nothing.
    b.open(&format!("/ui/t/{acme}/contacts")).await;
    b.client()
        .execute("document.querySelector('#add-contact input[name=csrf]').remove(); return true;", vec![])
        .await
        .unwrap();
    b.fill("#new-email", "sneaky@example.com").await;
    b.click("#add-contact button[type=submit]").await;
    b.wait_title("Form expired").await;
    let contacts = app.get(&format!("/customers/{acme}/contacts"), ADMIN_KEY).await;
    assert!(!contacts.body.to_string().contains("sneaky"), "{}", contacts.body);

    // Signing out ends the session: its cookie opens nothing any more.
    b.open(&format!("/ui/t/{acme}")).await;
    b.sign_out().await;
    b.open(&format!("/ui/t/{acme}")).await;
    b.wait_title("Sign in").await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_retries_a_dead_letter_made_by_the_provider() {
    // In the dark colour scheme: its pages are checked (contrast included) and photographed dark.
    let Some(b) = Browser::start_with("dead-letter-dark", true).await else { return };
    let faults = Faults { reject: vec!["bad@example.org".into()], ..Faults::default() };
    let app = spawn_with(Options {
        resend: true,
        mock: MockConfig { faults, ..MockConfig::default() },
        ..Options::default()
    })
    .await;
    b.set_base(&app.base);
    let (tenant, key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app
        .post(
            &format!("/customers/{tenant}/send/single"),
            &key,
            json!({ "to_email": "bad@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    let id = r.body["email_id"].as_str().unwrap().to_owned();
    app.drain().await;

    b.open("/ui/login").await;
    b.sign_in(ADMIN_KEY).await;
    b.open("/ui/dead-letters").await;
    b.wait_text("main table", "bad@example.org").await;
    b.check_page("dead-letters-all").await;
    b.open(&format!("/ui/t/{tenant}/dead-letters")).await;
    b.wait_text("main table", "validation_error").await;
    b.check_page("dead-letters").await;
    b.click("main table button[type=submit]").await;
    b.wait_text(".notice", "queued again").await;
    // Queued again with fresh attempts (the mock still refuses it, so it dies once more).
    let m = app.get(&format!("/customers/{tenant}/messages/{id}"), &key).await;
    assert!(["queued", "sending", "dead"].contains(&m.body["status"].as_str().unwrap()), "{}", m.body);
    app.drain().await;
    assert_eq!(app.mock().stats().send_requests, 2, "the retry reached the provider");
    b.open(&format!("/ui/t/{tenant}/messages/{id}")).await;
    b.wait_text("main", "validation_error").await;
    assert!(b.dark_scheme().await, "the page is in the dark scheme");
    b.check_page("message-dead").await;
    // The browser's own pace: a moment before its session closes.
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.finish().await;
}
