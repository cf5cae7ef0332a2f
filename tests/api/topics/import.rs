//! Imports with a column per topic: each contact's choice set, a consent
//! record for each change, unknown topics refused with the name.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{standing, topic};
use crate::helpers::TestApp;

async fn import(app: &TestApp, t: &str, key: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}/customers/{t}/contacts/import?on_conflict=update", app.base))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn contact_id(app: &TestApp, t: &str, key: &str, email: &str) -> String {
    let r = app.get(&format!("/customers/{t}/contacts?email={email}"), key).await;
    r.body[0]["id"].as_str().unwrap_or_else(|| panic!("{email}: {}", r.body)).to_owned()
}

/// The contact's records as sorted `change/source/topic` (records of one
/// moment have no order among them).
async fn records(app: &TestApp, t: &str, key: &str, contact: &str) -> Vec<String> {
    let all = app.get_all(&format!("/customers/{t}/contacts/{contact}/consent"), key).await;
    let mut out: Vec<String> = all
        .iter()
        .map(|r| format!("{}/{}/{}", r["change"].as_str().unwrap(), r["source"].as_str().unwrap(), r["topic"]["id"]))
        .collect();
    out.sort();
    out
}

fn s(v: (&str, &str, bool)) -> (String, String, bool) {
    (v.0.to_owned(), v.1.to_owned(), v.2)
}

#[tokio::test]
async fn a_csv_column_per_topic_sets_each_contacts_choice_with_a_record_once() {
    let app = crate::helpers::spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News", "default": "opt_in" })).await;
    let offers = topic(&app, &t, &key, json!({ "name": "Offers", "default": "opt_out" })).await;
    let known = app.add_contact(&t, &key, json!({ "email": "known@example.org" })).await;
    let body = json!({ "topics": [{ "id": news, "state": "subscribed" }] });
    let r = app.patch(&format!("/customers/{t}/contacts/{known}/topics"), &key, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let csv = format!(
        "email,Topic:news,topic:{offers}\n\
         a@example.org,subscribed,Unsubscribed\n\
         b@example.org,,subscribed\n\
         known@example.org,unsubscribed,\n\
         bad@example.org,yes,\n"
    );
    let (status, report) = import(&app, &t, &key, "text/csv", &csv).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["created"].as_u64(), report["updated"].as_u64()), (Some(2), Some(1)), "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["errors"][0]["line"], 5, "{report}");
    assert!(report["errors"][0]["reason"].as_str().unwrap().contains("topic:news"), "{report}");

    let a = contact_id(&app, &t, &key, "a@example.org").await;
    let b = contact_id(&app, &t, &key, "b@example.org").await;
    assert_eq!(
        standing(&app, &t, &key, &a).await,
        [s(("News", "subscribed", false)), s(("Offers", "unsubscribed", false))]
    );
    assert_eq!(
        standing(&app, &t, &key, &b).await,
        [s(("News", "unsubscribed", true)), s(("Offers", "subscribed", false))],
        "an empty cell leaves the default"
    );
    assert_eq!(standing(&app, &t, &key, &known).await[0], s(("News", "unsubscribed", false)));

    let (news_q, offers_q) = (format!("\"{news}\""), format!("\"{offers}\""));
    let a_records = vec![
        "imported/import/null".to_owned(),
        format!("topic_subscribed/import/{news_q}"),
        format!("topic_unsubscribed/import/{offers_q}"),
    ];
    assert_eq!(records(&app, &t, &key, &a).await, a_records);
    let known_records = vec![
        "created/api/null".to_owned(),
        format!("topic_subscribed/api/{news_q}"),
        format!("topic_unsubscribed/import/{news_q}"),
    ];
    assert_eq!(records(&app, &t, &key, &known).await, known_records);

    // The same import again changes no choice, so it records nothing.
    let (status, report) = import(&app, &t, &key, "text/csv", &csv).await;
    assert_eq!((status, report["updated"].as_u64()), (StatusCode::OK, Some(3)), "{report}");
    assert_eq!(records(&app, &t, &key, &a).await, a_records);
    assert_eq!(records(&app, &t, &key, &known).await, known_records);
}

#[tokio::test]
async fn a_header_naming_an_unknown_or_another_customers_topic_refuses_the_import_and_says_which() {
    let app = crate::helpers::spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    let theirs = topic(&app, &other, &other_key, json!({ "name": "Theirs", "default": "opt_in" })).await;
    topic(&app, &t, &key, json!({ "name": "News", "default": "opt_in" })).await;
    for header in ["Nope".to_owned(), theirs] {
        let csv = format!("email,topic:news,topic:{header}\na@example.org,subscribed,subscribed\n");
        let (status, body) = import(&app, &t, &key, "text/csv", &csv).await;
        assert!(status.is_client_error(), "{status} {body}");
        assert!(body.to_string().contains(&format!("no topic `{header}`")), "{body}");
    }
    let (status, body) = import(&app, &t, &key, "text/csv", "email,topic:news,topic:NEWS\na@example.org,,\n").await;
    assert!(status.is_client_error() && body.to_string().contains("two columns"), "{status} {body}");
    let r = app.get(&format!("/customers/{t}/contacts"), &key).await;
    assert_eq!(r.body, json!([]), "nothing imported");
}

#[tokio::test]
async fn an_ndjson_row_names_its_topics_and_a_row_naming_an_unknown_one_is_refused() {
    let app = crate::helpers::spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News", "default": "opt_in" })).await;
    let ndjson = format!(
        "{{\"email\":\"a@example.org\",\"topics\":{{\"news\":\"subscribed\"}}}}\n\
         {{\"email\":\"b@example.org\",\"topics\":{{\"{news}\":\"unsubscribed\"}}}}\n\
         {{\"email\":\"c@example.org\",\"topics\":{{\"Sports\":\"subscribed\"}}}}\n\
         {{\"email\":\"d@example.org\",\"topics\":{{\"news\":\"maybe\"}}}}\n"
    );
    let (status, report) = import(&app, &t, &key, "application/x-ndjson", &ndjson).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["created"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(2)), "{report}");
    assert!(report["errors"][0]["reason"].as_str().unwrap().contains("no topic `Sports`"), "{report}");
    assert_eq!(report["errors"][1]["line"], 4, "{report}");
    let a = contact_id(&app, &t, &key, "a@example.org").await;
    let b = contact_id(&app, &t, &key, "b@example.org").await;
    assert_eq!(standing(&app, &t, &key, &a).await, [s(("News", "subscribed", false))]);
    assert_eq!(standing(&app, &t, &key, &b).await, [s(("News", "unsubscribed", false))]);
    assert!(records(&app, &t, &key, &b).await.contains(&format!("topic_unsubscribed/import/\"{news}\"")));
}
