//! Segments in the dashboard: built with all/any/not conditions while the
//! live count follows, opened, edited and deleted in a browser; and over plain
//! HTTP, the rules of their pages: another tenant's segment is not there,
//! deleting needs the session's token, a refused filter comes back on the
//! form with what was typed, and the form works without the script.

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options, TestApp};
use crate::http::signed_in;

/// Selects the option `value` of the `<select>` matching `css`.
async fn choose(b: &Browser, css: &str, value: &str) {
    b.client().find(Locator::Css(css)).await.unwrap().select_by_value(value).await.unwrap();
}

/// Five contacts: tags and a `plan` attribute to build segments from.
async fn people(app: &TestApp, t: &str, key: &str) {
    for (email, tags, plan) in [
        ("ada@example.com", vec!["vip"], Some("pro")),
        ("grace@example.com", vec!["vip"], Some("free")),
        ("linus@example.com", vec!["beta"], Some("pro")),
        ("ken@example.com", vec!["beta"], Some("free")),
        ("margaret@example.com", vec![], None),
    ] {
        let attributes = plan.map_or(json!({}), |p| json!({ "plan": p }));
        app.add_contact(t, key, json!({ "email": email, "tags": tags, "attributes": attributes })).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_is_built_with_any_and_not_counted_live_opened_edited_and_deleted() {
    let Some(b) = Browser::start("segments").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    people(&app, &t, &key).await;
    b.sign_in(&key).await;
    b.open(&format!("/ui/t/{t}/segments")).await;

    // The count follows each change: a tag, then all of two conditions, then any, then not.
    b.fill("#seg-name", "VIPs or no pro plan").await;
    choose(&b, "#c0-kind", "tag").await;
    b.fill("#c0-value", "vip").await;
    b.wait_text("[data-count]", "2").await;
    choose(&b, "#c1-kind", "attribute_eq").await;
    b.fill("#c1-name", "plan").await;
    b.fill("#c1-value", "pro").await;
    b.wait_text("[data-count]", "1").await;
    b.click("input[name=combinator][value=any]").await;
    b.wait_text("[data-count]", "3").await;
    b.click("#c1-not").await;
    b.wait_text("[data-count]", "4").await;
    b.check_page("segments-builder").await;
    b.click("#seg-create").await;

    // Its page: the audience, the conditions in words, the contacts matching.
    b.wait_text(".notice", "Segment created").await;
    b.wait_title("VIPs or no pro plan").await;
    assert_eq!(b.text("#segment-audience").await, "4 contacts");
    let words = b.text("#segment-conditions").await;
    assert!(words.contains("has the tag “vip”") && words.contains("not (attribute plan is “pro”)"), "{words}");
    let members = b.text("#segment-members").await;
    assert!(members.contains("margaret@example.com") && !members.contains("linus@example.com"), "{members}");
    b.check_page("segment").await;

    // Edited with the same builder, filled in as stored; one more row without the script's help.
    assert_eq!(b.js_value("return document.querySelector('#c1-not').checked;").await, json!(true));
    b.click("#more-conditions").await;
    b.wait_text("#segment-form", "Condition 6").await;
    assert_eq!(b.js_value("return document.querySelector('#c1-name').value;").await, json!("plan"));
    b.fill("#seg-name", "Beta or pro").await;
    b.fill("#c0-value", "beta").await;
    b.click("#c1-not").await;
    b.wait_text("[data-count]", "3").await;
    b.click("#seg-save").await;
    b.wait_text(".notice", "Segment saved").await;
    b.wait_title("Beta or pro").await;
    assert_eq!(b.text("#segment-audience").await, "3 contacts");

    // The list links to it; deleting asks first, then it is gone.
    b.open(&format!("/ui/t/{t}/segments")).await;
    b.wait_text("#segments", "Beta or pro").await;
    b.check_page("segments").await;
    b.click("#segments a").await;
    b.wait_title("Beta or pro").await;
    b.click("#delete-segment").await;
    b.wait_text("h1", "Delete the segment").await;
    b.check_page("segment-delete").await;
    b.click("#confirm-delete").await;
    b.wait_text(".notice", "Segment deleted").await;
    assert!(!b.client().source().await.unwrap().contains("Beta or pro"));
    let listed = app.get(&format!("/customers/{t}/segments"), &key).await;
    assert_eq!(listed.body, json!([]));
    b.finish().await;
}

async fn segment(app: &TestApp, t: &str, key: &str, body: serde_json::Value) -> String {
    let r = app.post(&format!("/customers/{t}/segments"), key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn another_tenants_segment_is_the_not_found_page_and_stays_as_it_was() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (other, other_key) = app.verified_tenant("B", "b.example").await;
    let theirs = segment(&app, &other, &other_key, json!({ "name": "Theirs", "filter": { "tag": "x" } })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    for path in [
        format!("/ui/t/{t}/segments/{theirs}"),
        format!("/ui/t/{t}/segments/{theirs}/delete"),
        format!("/ui/t/{other}/segments/{theirs}"),
        format!("/ui/t/{t}/segments/not-an-id"),
    ] {
        let r = c.get(format!("{}{path}", app.base)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        assert!(!r.text().await.unwrap().contains("Theirs"), "{path}");
    }
    let base = format!("{}/ui/t/{t}/segments/{theirs}", app.base);
    let r = c.post(format!("{base}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.post(base, &[("csrf", &csrf), ("name", "Mine now"), ("c0_kind", "tag"), ("c0_value", "y")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let kept = app.get(&format!("/customers/{other}/segments/{theirs}"), &other_key).await;
    assert_eq!((kept.body["name"].clone(), kept.body["filter"].clone()), (json!("Theirs"), json!({ "tag": "x" })));
}

#[tokio::test]
async fn deleting_or_editing_a_segment_needs_the_sessions_token() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let sid = segment(&app, &t, &key, json!({ "name": "VIP", "filter": { "tag": "vip" } })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let base = format!("{}/ui/t/{t}/segments/{sid}", app.base);
    for form in [vec![], vec![("csrf", "forged")]] {
        let r = c.post(format!("{base}/delete"), &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let mut edit = form.clone();
        edit.extend([("name", "Renamed"), ("c0_kind", "tag"), ("c0_value", "x")]);
        assert_eq!(c.post(base.clone(), &edit).await.status(), StatusCode::FORBIDDEN);
    }
    let kept = app.get(&format!("/customers/{t}/segments/{sid}"), &key).await;
    assert_eq!(kept.body["name"], "VIP");
    let r = c.post(format!("{base}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/ui/t/{t}/segments?done=segment_deleted").as_str());
    assert_eq!(app.get(&format!("/customers/{t}/segments/{sid}"), &key).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refused_filter_comes_back_on_the_form_with_what_was_typed_and_a_reason() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let sid = segment(
        &app,
        &t,
        &key,
        json!({ "name": "Pro", "filter": { "attribute": "plan", "op": "eq", "value": "pro" } }),
    )
    .await;
    let (c, csrf) = signed_in(&app, &key).await;
    let list = format!("{}/ui/t/{t}/segments", app.base);
    for (row, reason) in [
        (vec![("c2_kind", "attribute_eq"), ("c2_name", "no spaces allowed"), ("c2_value", "x")], "Condition 3"),
        (vec![("c0_kind", "opened"), ("c0_value", "soon")], "Condition 1: give the number of days"),
        (vec![("c1_kind", "pwned"), ("c1_value", "x")], "Condition 2: choose"),
        (vec![("c0_kind", "status"), ("c0_value", "asleep")], "Condition 1"),
    ] {
        let mut form = vec![("csrf", csrf.as_str()), ("name", "Typed <name>"), ("combinator", "any")];
        form.extend(row.iter().copied());
        let r = c.post(list.clone(), &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{row:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains("id=\"form-error\"") && page.contains(reason), "{reason}: {page}");
        assert!(page.contains("value=\"Typed &lt;name&gt;\""), "the name is kept");
        assert!(page.contains("value=\"any\" checked"), "the combinator is kept");
        assert!(page.contains(&format!("value=\"{}\"", row.last().unwrap().1)), "the row is kept");
        // The live count says the same, as JSON for the script.
        let r = c
            .http
            .post(format!("{list}/count"))
            .header("cookie", c.header())
            .header("x-csrf-token", &csrf)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("Condition"));
    }
    assert_eq!(app.get(&format!("/customers/{t}/segments"), &key).await.body.as_array().unwrap().len(), 1);

    // The same on a segment's own form; the stored filter stays.
    let edit = format!("{list}/{sid}");
    let r = c
        .post(
            edit.clone(),
            &[
                ("csrf", &csrf),
                ("name", "Pro"),
                ("c0_kind", "attribute_eq"),
                ("c0_name", "bad-name"),
                ("c0_value", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("value=\"bad-name\""));
    let r = c.post(edit.clone(), &[("csrf", &csrf), ("name", "Pro")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "a dynamic segment keeps at least one condition");
    let kept = app.get(&format!("/customers/{t}/segments/{sid}"), &key).await;
    assert_eq!(kept.body["filter"], json!({ "attribute": "plan", "op": "eq", "value": "pro" }));
}

#[tokio::test]
async fn without_the_script_the_builder_adds_rows_and_a_static_segment_lists_its_members() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    people(&app, &t, &key).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let list = format!("{}/ui/t/{t}/segments", app.base);
    // "Add a condition" shows the form again with one more row, nothing created.
    let r = c
        .post(
            list.clone(),
            &[("csrf", &csrf), ("name", "Six"), ("c4_kind", "tag"), ("c4_value", "vip"), ("action", "more")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"c5_kind\"") && !page.contains("name=\"c6_kind\""), "six rows");
    assert!(page.contains("value=\"vip\""));
    assert_eq!(app.get(&format!("/customers/{t}/segments"), &key).await.body, json!([]));
    // Rows posted plainly: blank rows are ignored, the filter is what the rows say.
    let r = c
        .post(
            list.clone(),
            &[
                ("csrf", &csrf),
                ("name", "Not VIP"),
                ("combinator", "all"),
                ("c3_kind", "tag"),
                ("c3_value", "vip"),
                ("c3_not", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let made = app.get(&format!("/customers/{t}/segments"), &key).await;
    assert_eq!(made.body[0]["filter"], json!({ "all": [{ "not": { "tag": "vip" } }] }));

    // A static segment: its members, each linking to the contact; no conditions to edit.
    let sid = segment(&app, &t, &key, json!({ "name": "Hand-picked" })).await;
    let contacts = app.get(&format!("/customers/{t}/contacts"), &key).await;
    let ids: Vec<String> =
        contacts.body.as_array().unwrap().iter().take(2).map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    app.post(&format!("/customers/{t}/segments/{sid}/contacts"), &key, json!({ "contact_ids": ids })).await;
    let page = c.get(format!("{list}/{sid}")).await.text().await.unwrap();
    for id in &ids {
        assert!(page.contains(&format!("/contacts/{id}\">")), "{page}");
    }
    assert!(page.contains("2 contacts") && !page.contains("c0_kind"), "{page}");
    let r = c.post(format!("{list}/{sid}"), &[("csrf", &csrf), ("name", "Chosen")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}/segments/{sid}"), &key).await.body["name"], "Chosen");
}
