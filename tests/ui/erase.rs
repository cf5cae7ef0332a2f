//! A person's data from the contact's page (issue 23, section 4): a JSON
//! download, and erasure behind a confirmation page that needs no
//! JavaScript, then back to the contacts with a notice.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};
use crate::http::{hidden_csrf, signed_in};

#[tokio::test]
async fn the_contact_page_downloads_the_data_and_erases_after_a_confirmation() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.com", "first_name": "Ada" })).await;
    let (c, _) = signed_in(&app, &key).await;
    let page = c.get(format!("{}/ui/t/{t}/contacts/{ada}", app.base)).await.text().await.unwrap();
    assert!(page.contains("id=\"download-data\"") && page.contains("data.json"), "a download link");
    assert!(page.contains("id=\"erase-contact\""), "an erase link");

    let file = c.get(format!("{}/ui/t/{t}/contacts/{ada}/data.json", app.base)).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let data: Value = file.json().await.unwrap();
    assert_eq!(data["contact"]["email"], "ada@example.com");
    assert_eq!(data["consent_records"][0]["change"], "created");

    // The confirmation page changes nothing; a POST without the session's token is refused.
    let confirm = c.get(format!("{}/ui/t/{t}/contacts/{ada}/erase", app.base)).await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let confirm = confirm.text().await.unwrap();
    assert!(confirm.contains("ada@example.com") && confirm.contains("Erase for good"));
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{ada}"), &key).await.status, StatusCode::OK);
    let forged = c.post(format!("{}/ui/t/{t}/contacts/{ada}/erase", app.base), &[("csrf", "nope")]).await;
    assert_ne!(forged.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{ada}"), &key).await.status, StatusCode::OK);

    let r = c.post(format!("{}/ui/t/{t}/contacts/{ada}/erase", app.base), &[("csrf", &hidden_csrf(&confirm))]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/ui/t/{t}/contacts?done=contact_erased").as_str());
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{ada}"), &key).await.status, StatusCode::NOT_FOUND);
    let listed = c.get(format!("{}/ui/t/{t}/contacts?done=contact_erased", app.base)).await.text().await.unwrap();
    assert!(listed.contains("Contact erased") && !listed.contains("ada@example.com"));
    // Another customer's session cannot reach the page.
    let (o, okey) = app.verified_tenant("Other", "mail.other.example").await;
    let bob = app.add_contact(&o, &okey, json!({ "email": "bob@example.com" })).await;
    let r = c.get(format!("{}/ui/t/{t}/contacts/{bob}/erase", app.base)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(format!("{}/ui/t/{t}/contacts/{bob}/data.json", app.base)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_from_the_contact_page_in_a_browser() {
    let Some(b) = Browser::start("contact-erase").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.com", "first_name": "Ada" })).await;
    b.sign_in(&key).await;
    b.open(&format!("/ui/t/{t}/contacts/{ada}")).await;
    b.wait_title("ada@example.com").await;
    b.click("#erase-contact").await;
    b.wait_text("h1", "Erase ada@example.com?").await;
    b.check_page("contact-erase").await;
    b.click("#confirm-erase").await;
    b.wait_text(".notice", "Contact erased").await;
    b.check_page("contact-erased").await;
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{ada}"), &key).await.status, StatusCode::NOT_FOUND);
}
