//! A contact's page: its attributes edited as key/value rows (numbers and
//! yes/no values keep their JSON types), and its recent messages and delivery
//! events, each leading to the message.

use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};
use crate::http::signed_in;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_attributes_are_edited_on_its_page_beside_its_recent_messages_and_events() {
    let Some(b) = Browser::start("contact-page").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    let ada = app
        .add_contact(
            &t,
            &key,
            json!({ "email": "ada@example.com", "first_name": "Ada", "tags": ["vip"],
                    "attributes": { "plan": "pro", "seats": 5, "trial": true } }),
        )
        .await;
    let sent = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "Spring news for {{first_name}}", "html": "<p>Hi</p>", "tag": "vip" }),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let receipt = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "Ada@Example.com", "subject": "Your receipt", "html": "<p>Thanks</p>" }),
        )
        .await;
    let receipt = receipt.body["email_id"].as_str().unwrap().to_owned();
    app.drain().await;
    app.settle_until("both messages delivered", || async {
        let events = app.get(&format!("/customers/{t}/events?contact_id={ada}"), &key).await;
        events.body.as_array().is_some_and(|e| e.iter().filter(|e| e["type"] == "email.delivered").count() == 2)
    })
    .await;

    b.sign_in(&key).await;
    b.open(&format!("/ui/t/{t}/contacts/{ada}")).await;
    b.wait_title("ada@example.com").await;
    // Its mail, newest first, by subject; each row opens the message.
    let messages = b.text("#contact-recent-messages").await;
    assert!(messages.contains("Your receipt") && messages.contains("Spring news for Ada"), "{messages}");
    assert!(!messages.contains("{{"), "{messages}");
    let events = b.text("#contact-recent-events").await;
    assert!(events.contains("Delivered"), "{events}");
    b.check_page("contact").await;

    // The attributes as rows, typed values as typed.
    let rows = "return [...document.querySelectorAll('#attributes .attr-row')].map(r => \
         [r.querySelector('[name=attr_key]').value, r.querySelector('[name=attr_value]').value]);";
    let shown = b.js_value(rows).await;
    assert_eq!(shown, json!([["plan", "pro"], ["seats", "5"], ["trial", "true"], ["", ""], ["", ""]]));
    b.fill("#attr-value-2", "6").await;
    b.fill("#attr-value-3", "").await;
    b.fill("#attr-key-4", "city").await;
    b.fill("#attr-value-4", "Paris").await;
    b.fill("#attr-key-5", "code").await;
    b.fill("#attr-value-5", "\"42\"").await;
    b.click("#save-contact").await;
    b.wait_text(".notice", "Contact saved").await;
    let saved = app.get(&format!("/customers/{t}/contacts/{ada}"), &key).await;
    assert_eq!(saved.body["attributes"], json!({ "plan": "pro", "seats": 6, "city": "Paris", "code": "42" }));
    // Shown again as typed: the text 42 in quotes, the number without.
    let shown = b.js_value(rows).await;
    for row in [json!(["code", "\"42\""]), json!(["seats", "6"]), json!(["", ""])] {
        assert!(shown.as_array().unwrap().contains(&row), "{row} not in {shown}");
    }
    b.check_page("contact-saved").await;

    // A message row leads to that message's timeline.
    b.click(&format!("#contact-recent-messages a[href$='/messages/{receipt}']")).await;
    b.wait_text("main", "To Ada@Example.com").await;
    assert!(b.current_path().await.ends_with(&receipt));
    b.finish().await;
}

#[tokio::test]
async fn attributes_posted_from_the_contact_form_are_checked_like_the_apis() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (other, other_key) = app.verified_tenant("B", "b.example").await;
    let id = app.add_contact(&t, &key, json!({ "email": "ada@example.com", "attributes": { "plan": "pro" } })).await;
    let theirs = app.add_contact(&other, &other_key, json!({ "email": "eve@example.com" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/contacts/{id}", app.base);
    let base =
        [("csrf", csrf.as_str()), ("email", "ada@example.com"), ("first_name", ""), ("last_name", ""), ("tags", "")];
    for (k, v) in [("bad key", "x"), ("email", "x"), ("ok", "\0")] {
        let mut form = base.to_vec();
        form.extend([("attr_key", k), ("attr_value", v)]);
        let r = c.post(url.clone(), &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{k}");
    }
    let kept = app.get(&format!("/customers/{t}/contacts/{id}"), &key).await;
    assert_eq!(kept.body["attributes"], json!({ "plan": "pro" }));
    // A form without attribute rows leaves them; rows emptied remove them.
    assert_eq!(c.post(url.clone(), &base).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&format!("/customers/{t}/contacts/{id}"), &key).await.body["attributes"],
        json!({ "plan": "pro" })
    );
    let mut emptied = base.to_vec();
    emptied.extend([("attr_key", "plan"), ("attr_value", ""), ("attr_key", ""), ("attr_value", "")]);
    assert_eq!(c.post(url.clone(), &emptied).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{id}"), &key).await.body["attributes"], json!({}));
    // Another tenant's contact is not there to edit.
    let r = c.post(format!("{}/ui/t/{t}/contacts/{theirs}", app.base), &base).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(c.get(format!("{}/ui/t/{t}/contacts/{theirs}", app.base)).await.status(), StatusCode::NOT_FOUND);
}
