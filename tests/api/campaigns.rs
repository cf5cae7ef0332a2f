use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_campaign_shows_its_status_and_counts_and_can_be_deleted() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    for e in ["delivered@resend.dev", "bounced@resend.dev", "complained@resend.dev"] {
        app.add_contact(&t, &key, json!({ "email": e })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "tag": null })).await;
    let cid = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    // The sandbox reports Resend's test-address outcomes through the event pipeline.
    app.settle_until("sandbox events", || async {
        let c = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
        c.body["counts"]["delivered"] == 1 && c.body["counts"]["bounced"] == 1 && c.body["counts"]["complained"] == 1
    })
    .await;
    let c = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(c.body["status"], "sent");
    assert_eq!(c.body["sent_to"], 3);
    assert_eq!(c.body["targeting"], json!({}));
    let contacts = app.get(&format!("/customers/{t}/contacts"), &key).await;
    let statuses: Vec<&str> = contacts.body.as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["subscribed", "bounced", "complained"]);

    assert_eq!(app.delete(&format!("/customers/{t}/campaigns/{cid}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await.status, StatusCode::NOT_FOUND);
}
