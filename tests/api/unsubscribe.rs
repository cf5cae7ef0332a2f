//! One-click unsubscribe (RFC 8058) and the suppression list.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options, TestApp};

/// The path (`/u/...`) of the link in an email's `List-Unsubscribe` header.
fn link_path(e: &mailroom::mock::AcceptedEmail) -> String {
    let header = e.headers.get("List-Unsubscribe").expect("List-Unsubscribe header");
    let url = header.strip_prefix('<').and_then(|h| h.strip_suffix('>')).expect("<url>");
    let path = url::Url::parse(url).expect("a URL").path().to_owned();
    assert!(path.starts_with("/u/"), "{url}");
    path
}

async fn post_form(app: &TestApp, path: &str, body: &'static str, content_type: &str) -> (StatusCode, String) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(r.headers().get("set-cookie").is_none());
    (status, r.text().await.unwrap())
}

async fn campaign_to(app: &TestApp, t: &str, key: &str) -> String {
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "subject": "News", "html": "<p>hi</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    r.body["campaign_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_one_click_link_in_the_headers_unsubscribes_exactly_that_recipient_of_that_tenant() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.com").await;
    let (b, key_b) = app.verified_tenant("Bolt", "bolt.com").await;
    app.add_contact(&a, &key_a, json!({ "email": "Pat@Example.org" })).await;
    app.add_contact(&a, &key_a, json!({ "email": "sam@example.org" })).await;
    app.add_contact(&b, &key_b, json!({ "email": "pat@example.org" })).await;
    let cid = campaign_to(&app, &a, &key_a).await;
    let accepted = app.mock().accepted();
    let pat = accepted.iter().find(|e| e.to[0] == "Pat@Example.org").unwrap();
    assert_eq!(pat.headers.get("List-Unsubscribe-Post").map(String::as_str), Some("List-Unsubscribe=One-Click"));
    let path = link_path(pat);
    assert!(!path.to_lowercase().contains("example"), "no address in the link: {path}");
    assert!(pat.html.as_deref().unwrap().contains(&path), "the footer carries the same link");
    assert_ne!(path, link_path(accepted.iter().find(|e| e.to[0] == "sam@example.org").unwrap()));
    // The message view shows the same link the email carried.
    let message_id = pat.tags.iter().find(|t| t.name == "message").unwrap().value.clone();
    let view = app.get(&format!("/customers/{a}/messages/{message_id}"), &key_a).await;
    assert!(view.body["unsubscribe_url"].as_str().unwrap().ends_with(&path), "{}", view.body);
    let listed = app.get(&format!("/customers/{a}/campaigns/{cid}/messages?limit=1"), &key_a).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.body);
    let next = listed.headers["link"].to_str().unwrap().to_owned();
    let next = &next[next.find('<').unwrap() + 1..next.find('>').unwrap()];
    let rest = app.get(next, &key_a).await;
    let both: Vec<_> = listed.body.as_array().unwrap().iter().chain(rest.body.as_array().unwrap()).cloned().collect();
    assert_eq!(both.len(), 2);
    let listed_pat = both.iter().find(|m| m["to"] == "Pat@Example.org").unwrap();
    assert!(listed_pat["unsubscribe_url"].as_str().unwrap().ends_with(&path));
    let (b_key_view, bad_page) = (
        app.get(&format!("/customers/{b}/campaigns/{cid}/messages"), &key_b).await,
        app.get(&format!("/customers/{a}/campaigns/{cid}/messages?after=x"), &key_a).await,
    );
    assert_eq!(b_key_view.status, StatusCode::NOT_FOUND, "another tenant's campaign");
    assert_eq!(bad_page.status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, page) =
        post_form(&app, &path, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // Again: still 200, nothing more happens.
    let (again, _) = post_form(&app, &path, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded").await;
    assert_eq!(again, StatusCode::OK);

    let contacts = app.get(&format!("/customers/{a}/contacts"), &key_a).await;
    let status_of =
        |email: &str| contacts.body.as_array().unwrap().iter().find(|c| c["email"] == email).unwrap()["status"].clone();
    assert_eq!(status_of("Pat@Example.org"), "unsubscribed");
    assert_eq!(status_of("sam@example.org"), "subscribed");
    let other = app.get(&format!("/customers/{b}/contacts"), &key_b).await;
    assert_eq!(other.body[0]["status"], "subscribed", "the same address at another tenant is untouched");

    let list = app.get(&format!("/customers/{a}/suppressions"), &key_a).await;
    assert_eq!(
        list.body,
        json!([{ "email": "pat@example.org", "reason": "unsubscribed", "source": cid,
        "created_at": list.body[0]["created_at"] }])
    );
    let campaign = app.get(&format!("/customers/{a}/campaigns/{cid}"), &key_a).await;
    assert_eq!(campaign.body["unsubscribed"], 1, "{}", campaign.body);

    // The next campaign skips Pat.
    campaign_to(&app, &a, &key_a).await;
    assert_eq!(app.mock().accepted().iter().filter(|e| e.to[0] == "Pat@Example.org").count(), 1);
}

#[tokio::test]
async fn get_shows_a_confirmation_and_never_unsubscribes() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key) = app.verified_tenant("Acme <Shop>", "acme.com").await;
    app.add_contact(&a, &key, json!({ "email": "g@example.org" })).await;
    campaign_to(&app, &a, &key).await;
    let path = link_path(&app.mock().accepted()[0]);
    for _ in 0..3 {
        let r = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        assert!(page.contains("Acme &lt;Shop&gt;"), "names the tenant, escaped: {page}");
        assert!(page.contains("<form method=\"post\""), "{page}");
    }
    let contacts = app.get(&format!("/customers/{a}/contacts"), &key).await;
    assert_eq!(contacts.body[0]["status"], "subscribed");
    // The page's button posts the form: an empty or multipart body works too.
    let (status, _) = post_form(&app, &path, "", "application/x-www-form-urlencoded").await;
    assert_eq!(status, StatusCode::OK);
    let contacts = app.get(&format!("/customers/{a}/contacts"), &key).await;
    assert_eq!(contacts.body[0]["status"], "unsubscribed");
}

#[tokio::test]
async fn forged_or_altered_tokens_get_a_404_page_that_reveals_nothing() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key) = app.verified_tenant("Acme", "acme.com").await;
    app.add_contact(&a, &key, json!({ "email": "f@example.org" })).await;
    campaign_to(&app, &a, &key).await;
    let path = link_path(&app.mock().accepted()[0]);
    let token = path.trim_start_matches("/u/");
    let mut altered: Vec<char> = token.chars().collect();
    altered[3] = if altered[3] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    let message_id = app.mock().accepted()[0].tags.iter().find(|t| t.name == "message").unwrap().value.clone();
    for bad in [altered.as_str(), "preview", "x", &message_id, &"A".repeat(43), &"A".repeat(5000)] {
        for post in [false, true] {
            let url = format!("{}/u/{bad}", app.base);
            let r = if post {
                app.http.post(&url).header("content-type", "multipart/form-data; boundary=x").body("--x--").send()
            } else {
                app.http.get(&url).send()
            }
            .await
            .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
            let page = r.text().await.unwrap();
            assert!(!page.contains("Acme") && !page.contains("f@example.org"), "{page}");
        }
    }
    let contacts = app.get(&format!("/customers/{a}/contacts"), &key).await;
    assert_eq!(contacts.body[0]["status"], "subscribed");
}

#[tokio::test]
async fn transactional_mail_carries_unsubscribe_headers_only_when_asked() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key) = app.verified_tenant("Acme", "acme.com").await;
    let send = format!("/customers/{a}/send/single");
    app.post(&send, &key, json!({ "to_email": "t1@example.org", "subject": "plain", "html": "<p>x</p>" })).await;
    let r = app
        .post(
            &send,
            &key,
            json!({ "to_email": "t2@example.org", "subject": "asked", "html": "<p>x</p>", "unsubscribe": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let accepted = app.mock().accepted();
    let plain = accepted.iter().find(|e| e.subject == "plain").unwrap();
    assert!(plain.headers.is_empty());
    assert_eq!(plain.html.as_deref(), Some("<p>x</p>"));
    let asked = accepted.iter().find(|e| e.subject == "asked").unwrap();
    let path = link_path(asked);
    assert!(asked.html.as_deref().unwrap().contains(&path));
    let (status, _) = post_form(&app, &path, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded").await;
    assert_eq!(status, StatusCode::OK);
    let list = app.get(&format!("/customers/{a}/suppressions"), &key).await;
    assert_eq!(list.body[0]["email"], "t2@example.org");
    assert_eq!(list.body[0]["source"], r.body["email_id"], "the message it came from");
}

#[tokio::test]
async fn the_footer_can_be_turned_off_per_tenant_but_the_headers_stay() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app.patch(&format!("/customers/{a}"), &key, json!({ "unsubscribe_footer": false })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["unsubscribe_footer"], false);
    assert_eq!(r.body["name"], "Acme");
    app.add_contact(&a, &key, json!({ "email": "n@example.org" })).await;
    campaign_to(&app, &a, &key).await;
    let e = &app.mock().accepted()[0];
    assert_eq!(e.html.as_deref(), Some("<p>hi</p>"));
    link_path(e);
}

#[tokio::test]
async fn the_suppression_list_can_be_read_added_to_and_removed_from() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key) = app.verified_tenant("Acme", "acme.com").await;
    let path = format!("/customers/{a}/suppressions");
    let r = app.post(&path, &key, json!({ "emails": ["M1@example.org", "m2@example.org", "m1@example.org"] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["added"], 2);
    let list = app.get(&path, &key).await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    assert_eq!(list.body[0]["reason"], "manual");
    assert_eq!(list.body[0]["source"], "api");

    // A suppressed address is not mailed, even when its contact is created afterwards.
    app.add_contact(&a, &key, json!({ "email": "m1@example.org" })).await;
    app.add_contact(&a, &key, json!({ "email": "ok@example.org" })).await;
    let sent = app.post(&format!("/customers/{a}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(sent.body["sent_to"], 1, "{}", sent.body);
    let single = app
        .post(
            &format!("/customers/{a}/send/single"),
            &key,
            json!({ "to_email": "m2@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    assert_eq!(single.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A complaint needs force to be removed.
    let (_, _, id) = {
        let email = "c@example.org";
        app.add_contact(&a, &key, json!({ "email": email })).await;
        app.post(&format!("/customers/{a}/send"), &key, json!({ "subject": "c", "html": "h" })).await;
        app.drain().await;
        let e = app.mock().accepted().into_iter().find(|e| e.to[0] == email).unwrap();
        (email, e.subject.clone(), e.id)
    };
    let r = app.webhook("complaint-1", &crate::helpers::event("email.complained", &id, json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let complained = app.get(&format!("{path}?reason=complained"), &key).await;
    assert_eq!(complained.body.as_array().unwrap().len(), 1, "{}", complained.body);
    let r = app.delete(&format!("{path}/c@example.org"), &key).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "complaint_needs_force");
    let r = app.delete(&format!("{path}/C@example.org?force=true"), &key).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let contacts = app.get(&format!("/customers/{a}/contacts"), &key).await;
    let c = contacts.body.as_array().unwrap().iter().find(|c| c["email"] == "c@example.org").unwrap();
    assert_eq!(c["status"], "subscribed", "the entry that set its status is gone");

    let r = app.delete(&format!("{path}/m2@example.org"), &key).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("{path}/m2@example.org"), &key).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&format!("{path}/not-an-address"), &key).await.status, StatusCode::NOT_FOUND);

    for bad in ["?reason=nope", "?limit=0", "?limit=x", "?unknown=1"] {
        let r = app.get(&format!("{path}{bad}"), &key).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.body);
    }
    for body in
        [json!({ "emails": [] }), json!({ "emails": ["nope"] }), json!({ "emails": ["a@b.co"], "x": 1 }), json!({})]
    {
        let r = app.post(&path, &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
    }
    // Another tenant sees none of it.
    let (b, key_b) = app.verified_tenant("Bolt", "bolt.com").await;
    assert_eq!(app.get(&format!("/customers/{b}/suppressions"), &key_b).await.body, json!([]));
    assert_eq!(app.get(&path, &key_b).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_suppression_list_pages_in_address_order() {
    let app = spawn_with(Options::default()).await;
    let (a, key) = app.verified_tenant_offline("Acme", "acme.com").await;
    let path = format!("/customers/{a}/suppressions");
    let emails: Vec<String> = (0..25).map(|i| format!("p{i:02}@example.org")).collect();
    app.post(&path, &key, json!({ "emails": emails })).await;
    let mut seen = Vec::new();
    let mut next = Some(format!("{path}?limit=10"));
    while let Some(url) = next {
        let r = app.get(&url, &key).await;
        seen.extend(r.body.as_array().unwrap().iter().map(|s| s["email"].as_str().unwrap().to_owned()));
        next = r.headers.get("link").map(|l| {
            let l = l.to_str().unwrap();
            l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_owned()
        });
    }
    assert_eq!(seen, emails);
}
