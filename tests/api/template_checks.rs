//! Issue 20, section 2: what a template's save checks. Its `sample_variables`
//! (stored with it) are rendered for a sample recipient and up to three of the
//! customer's contacts, and a template that needs more than half of the
//! render fuel for any of them is refused; so is one that reaches for another
//! template (`include`, `import`, `extends`, `from`).

use mailroom::domain::TenantId;
use mailroom::store::TemplateContent;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Options, TestApp};

/// n² iterations: n = 200 needs more than half of the render fuel (a send
/// has all of it, and renders it), n = 100 less than half.
const GRID: &str = "{% for i in range(n | default(1)) %}{% for j in range(n | default(1)) %}x{% endfor %}{% endfor %}";

async fn app() -> (TestApp, String, String) {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    (app, t, key)
}

fn refused_because(r: &crate::helpers::Res, what: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_template", "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(what), "{what} in {message}");
}

#[tokio::test]
async fn sample_variables_are_stored_and_a_template_needing_more_than_half_the_fuel_for_them_is_refused() {
    let (app, t, key) = app().await;
    let path = format!("/customers/{t}/templates");
    let grid = |n: i64| json!({ "name": "Grid", "subject": "s", "html": GRID, "sample_variables": { "n": n } });
    let r = app.post(&path, &key, grid(200)).await;
    refused_because(&r, "half of the render fuel");
    let r = app.post(&path, &key, grid(100)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["sample_variables"], json!({ "n": 100 }));
    let id = r.body["id"].as_str().unwrap().to_owned();
    let one = format!("{path}/{id}");
    assert_eq!(app.get(&one, &key).await.body["sample_variables"], json!({ "n": 100 }));

    // A change is checked with the stored sample variables, or with new ones.
    let r = app.patch(&one, &key, json!({ "sample_variables": { "n": 200 } })).await;
    refused_because(&r, "half of the render fuel");
    let r = app.patch(&one, &key, json!({ "subject": "t" })).await;
    assert_eq!(
        (r.status, r.body["version"].clone(), r.body["sample_variables"].clone()),
        (StatusCode::OK, json!(2), json!({ "n": 100 }))
    );
    let r = app.patch(&one, &key, json!({ "sample_variables": null })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sample_variables"], Value::Null);
    assert_eq!(app.get(&format!("{one}/versions"), &key).await.body[1]["sample_variables"], json!({ "n": 100 }));

    // Half, not all: a send with n = 200 renders (a send has all of the fuel).
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let r =
        app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": id, "variables": { "n": 200 } })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.settle().await;
    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 1);
    let html = accepted[0].html.as_deref().unwrap_or_default();
    assert!(html.starts_with(&"x".repeat(40_000)) && !html.starts_with(&"x".repeat(40_001)), "{}", &html[39_990..]);

    // Not an object, or an unknown field: 422.
    for bad in [
        json!({ "name": "B", "subject": "s", "html": "h", "sample_variables": [1] }),
        json!({ "name": "B", "subject": "s", "html": "h", "sample_variables": "n=1" }),
        json!({ "name": "B", "subject": "s", "html": "h", "sample_variable": {} }),
    ] {
        let r = app.post(&path, &key, bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    }
}

#[tokio::test]
async fn a_save_renders_for_the_customers_own_contacts_too() {
    let (app, t, key) = app().await;
    let path = format!("/customers/{t}/templates");
    let html = "{% set n = contact.attributes.n | default(1) %}{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}";
    let body = json!({ "name": "Grid", "subject": "s", "html": html });
    assert_eq!(app.post(&path, &key, body.clone()).await.status, StatusCode::CREATED);
    app.add_contact(&t, &key, json!({ "email": "small@example.org", "attributes": { "n": 2 } })).await;
    assert_eq!(app.post(&path, &key, body.clone()).await.status, StatusCode::CREATED);
    app.add_contact(&t, &key, json!({ "email": "big@example.org", "attributes": { "n": 200 } })).await;
    refused_because(&app.post(&path, &key, body).await, "half of the render fuel");
}

#[tokio::test]
async fn a_template_that_uses_include_import_extends_or_from_is_refused_but_old_versions_keep_rendering() {
    let (app, t, key) = app().await;
    let path = format!("/customers/{t}/templates");
    for (html, what) in [
        ("<p>{% include 'subject' %}</p>", "include"),
        ("{% import 'subject' as s %}{{ s.x }}", "import"),
        ("{% from 'subject' import x %}", "from"),
        ("{% extends 'subject' %}{% block b %}{% endblock %}", "extends"),
    ] {
        let r = app.post(&path, &key, json!({ "name": "Inc", "subject": "s", "html": html })).await;
        refused_because(&r, what);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("self-contained"), "{}", r.body);
    }
    let r = app
        .post(&path, &key, json!({ "name": "Inc", "subject": "s", "html": "ok", "text": "{% include 'html' %}" }))
        .await;
    refused_because(&r, "`text`");
    // Written out in a comment or a raw block, nothing is included.
    let r = app
        .post(&path, &key, json!({ "name": "Doc", "subject": "s", "html": "{# no {% include %} #}{% raw %}{% include 'x' %}{% endraw %}" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // A version saved before the rule (written here straight to the store)
    // keeps rendering for the campaigns that send it ...
    let old = TemplateContent {
        name: "Old".into(),
        subject: "Hello <b>".into(),
        html: "<p>{% include 'subject' %}</p>".into(),
        text: None,
        sample_variables: None,
    };
    let old = app.store.create_template(&TenantId::from_stored(t.clone()), &old).await.unwrap();
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": old.id })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.settle().await;
    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 1, "the old version still renders");
    assert!(accepted[0].html.as_deref().unwrap_or_default().contains("Hello"));
    // ... until it is edited.
    let r = app.patch(&format!("{path}/{}", old.id), &key, json!({ "name": "Old, renamed" })).await;
    refused_because(&r, "include");
}
