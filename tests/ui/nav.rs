//! The dashboard's grouped navigation on a phone, its 404 page, and paging
//! through a filtered contact list.

use fantoccini::Locator;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};

/// Every page of a tenant, as the menu names it, and its path under `/ui/t/{id}`.
const SECTIONS: [(&str, &str); 15] = [
    ("Contacts", "/contacts"),
    ("Segments", "/segments"),
    ("Topics", "/topics"),
    ("Imports", "/contacts/import"),
    ("Suppressions", "/suppressions"),
    ("Templates", "/templates"),
    ("Campaigns", "/campaigns"),
    ("Messages", "/messages"),
    ("Dead letters", "/dead-letters"),
    ("Sending settings", "/settings"),
    ("Events", "/events"),
    ("Automations", "/automations"),
    ("Webhooks", "/webhooks"),
    ("Reputation", "/reputation"),
    ("Overview", ""),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_every_section_is_reached_from_the_menu_and_nothing_scrolls_sideways() {
    let Some(b) = Browser::start_phone("phone").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme Newsletters", "mail.acme.example").await;
    let ada =
        app.add_contact(&t, &key, json!({ "email": "ada@example.com", "first_name": "Ada", "tags": ["vip"] })).await;
    app.add_contact(&t, &key, json!({ "email": "bounced@resend.dev", "tags": ["vip"] })).await;
    // Rows in every list: a campaign, its events, a bounce that suppresses an address.
    let sent = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "Hi {{first_name}}, a very long subject line that has to wrap on a narrow phone screen", "html": "<p>Hi</p>", "tag": "vip" }),
        )
        .await;
    let campaign = sent.body["campaign_id"].as_str().expect("a campaign").to_owned();
    let email = app.send_single(&t, &key, "delivered@resend.dev").await;
    let segment = app
        .post(
            &format!("/customers/{t}/segments"),
            &key,
            json!({ "name": "VIPs who opened lately, a name long enough to wrap", "filter": { "any": [{ "tag": "vip" },
                { "not": { "event": "opened", "within_days": 30 } }, { "attribute": "plan", "op": "in", "value": ["pro", "team"] }] } }),
        )
        .await;
    let segment = segment.body["id"].as_str().expect("a segment").to_owned();
    app.drain().await;
    app.settle_until("the bounce suppressing its address", || async {
        let s = app.get(&format!("/customers/{t}/suppressions"), &key).await;
        s.body.as_array().is_some_and(|list| !list.is_empty())
    })
    .await;
    b.sign_in(&key).await;
    b.wait_title("Acme Newsletters").await;
    assert_eq!(b.js_value("return innerWidth;").await, json!(390), "not a phone-sized viewport");

    // The menu starts closed: the page comes first.
    assert_eq!(b.js_value("return document.querySelector('#menu').open;").await, json!(false));
    assert_eq!(b.js_value("return document.querySelector('#menu nav').checkVisibility();").await, json!(false));
    b.photograph("menu-closed").await;
    b.click("#menu summary").await;
    assert_eq!(b.js_value("return document.querySelector('#menu nav').checkVisibility();").await, json!(true));
    b.photograph("menu-open").await;

    for (label, path) in SECTIONS {
        let want = format!("/ui/t/{t}{path}");
        if b.js_value("return document.querySelector('#menu').open;").await != json!(true) {
            b.click("#menu summary").await;
        }
        b.click(&format!("#menu nav a[href='{want}']")).await;
        b.wait_text("#menu a[aria-current=page]", label).await;
        assert_eq!(b.current_path().await, want);
        // Closed again on the new page, naming where the reader is.
        assert!(b.text("#menu summary").await.contains(label), "the closed menu names {label}");
        assert!(b.overflow_x().await <= 0, "{label} scrolls sideways on a phone");
        assert_eq!(b.wider_than_viewport().await, json!([]), "{label}: wider than a phone");
        b.check_accessibility(&format!("{label} on a phone")).await;
        b.photograph(&format!("section-{}", label.to_lowercase().replace(' ', "-"))).await;
    }
    let pages = [
        ("campaign", format!("/campaigns/{campaign}")),
        ("message", format!("/messages/{email}")),
        ("compose", "/campaigns/new".to_owned()),
        ("contact", format!("/contacts/{ada}")),
        ("segment", format!("/segments/{segment}")),
        ("contacts-filtered", "/contacts?q=ada&status=subscribed".to_owned()),
    ];
    for (name, path) in pages {
        b.open(&format!("/ui/t/{t}{path}")).await;
        b.wait_text("#menu summary", "Menu").await;
        assert!(b.overflow_x().await <= 0, "{name} scrolls sideways on a phone");
        assert_eq!(b.wider_than_viewport().await, json!([]), "{name}: wider than a phone");
        b.check_accessibility(&format!("{name} on a phone")).await;
        b.photograph(name).await;
        if name == "campaign" {
            // Titled by its rendered subject, never its template tags.
            assert!(b.text("h1").await.starts_with("Hi there, a very long subject"));
        }
    }

    // Times: UTC to the second in the markup and on hover, the reader's own words on the page.
    b.open(&format!("/ui/t/{t}/events")).await;
    let time = b
        .js_value(
            "var t = document.querySelector('main time'); \
             return [t.getAttribute('datetime'), t.getAttribute('title'), t.textContent];",
        )
        .await;
    let (datetime, title, shown) = (time[0].as_str().unwrap(), time[1].as_str().unwrap(), time[2].as_str().unwrap());
    assert!(datetime.len() == 20 && datetime.ends_with('Z') && !datetime.contains('.'), "{datetime}");
    assert!(title.ends_with(" UTC") && title.starts_with(&datetime[..10]), "{title}");
    assert!(!shown.contains("UTC") && !shown.contains('T'), "the page shows {shown:?}, not local time");
    // Events by the name people use, to an address, not a message id.
    let events = b.text("#events").await;
    assert!(events.contains("Delivered") && events.contains("@"), "{events}");
    assert!(!events.contains(&email), "{events}");
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_does_not_exist_keeps_the_navigation_and_sign_out() {
    let Some(b) = Browser::start("notfound").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    let (other, _) = app.verified_tenant("Other Corp", "mail.other.example").await;
    b.sign_in(&key).await;
    b.wait_title("Acme").await;

    for path in [
        format!("/ui/t/{t}/no-such-page"),
        format!("/ui/t/{t}/contacts/0190b2a4-0000-7000-8000-000000000000"),
        "/ui/nothing-here".to_owned(),
        // Another tenant's page is as absent as a mistyped one, and names nothing of it.
        format!("/ui/t/{other}/contacts"),
    ] {
        b.open(&path).await;
        b.wait_title("Not found").await;
        assert!(
            b.client().find(Locator::Css(&format!("#menu nav a[href='/ui/t/{t}/contacts']"))).await.is_ok(),
            "{path}: no navigation"
        );
        assert!(b.client().find(Locator::Css("form.signout button")).await.is_ok(), "{path}: no Sign out");
        let source = b.client().source().await.unwrap();
        assert!(!source.contains("Other Corp") && !source.contains(&format!("/ui/t/{other}/")), "{path}");
    }
    b.check_page("not-found").await;
    b.sign_out().await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_contact_list_pages_through_every_match_and_shows_the_total() {
    let Some(b) = Browser::start("paging").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    app.import_contacts(&t, &key, 130, "list.example").await;
    app.add_contact(&t, &key, json!({ "email": "someone@elsewhere.example" })).await;
    b.sign_in(&key).await;
    b.open(&format!("/ui/t/{t}/contacts")).await;
    b.wait_text("#contact-total", "131 contacts").await;

    b.fill("#q", "list.example").await;
    b.click("form[role=search] button").await;
    b.wait_text("#contact-total", "130 matching").await;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let rows = b.js_value("return [...document.querySelectorAll('main table tbody tr td.lead')].map(td => td.textContent.trim());").await;
        for r in rows.as_array().unwrap() {
            let email = r.as_str().unwrap().to_owned();
            assert!(email.ends_with("@list.example"), "{email} does not match the filter");
            assert!(seen.insert(email.clone()), "{email} shown twice");
        }
        if b.client().find(Locator::Css("#next-page")).await.is_err() {
            break;
        }
        b.click("#next-page").await;
        b.wait_text("main .pager", "First page").await;
        assert_eq!(b.js_value("return document.querySelector('#q').value;").await, json!("list.example"));
    }
    assert_eq!(seen.len(), 130);
    b.check_page("contacts-last-page").await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_operators_tenant_page_and_its_keys_fit_the_screen() {
    let Some(b) = Browser::start_phone("tenant-admin-phone").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, _) = app.verified_tenant("Acme Newsletters", "mail.acme.example").await;
    b.sign_in(crate::helpers::ADMIN_KEY).await;
    b.open(&format!("/ui/tenants/{t}")).await;
    b.fill("#key-name", "a label long enough to need some room on a phone").await;
    b.click("form[action$='/keys'] button").await;
    b.wait_text("#new-key", "New key").await;
    b.open(&format!("/ui/tenants/{t}")).await;
    b.wait_text("#tenant-keys", "a label long enough").await;
    assert_eq!(b.js_value("return innerWidth;").await, json!(390), "not a phone-sized viewport");
    assert!(b.overflow_x().await <= 0, "the tenant's page scrolls sideways on a phone");
    assert_eq!(b.wider_than_viewport().await, json!([]), "the tenant's page is wider than a phone");
    b.check_accessibility("the tenant's page on a phone").await;
    b.js_value("document.querySelector('#tenant-keys').scrollIntoView(); return true;").await;
    b.photograph("tenant-keys").await;
    b.finish().await;
}
