//! Times in the reader's own time zone: the server writes UTC, the page shows
//! local time (relative when recent), the exact UTC time on hover.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_in_india_sees_times_in_india_time_with_utc_on_hover() {
    let Some(b) = Browser::start_in_zone("zone", "Asia/Kolkata").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    // Far enough from now (by the store's clock) that the page writes the time, not "3 min ago".
    app.advance(Duration::from_secs(40 * 86_400));
    app.add_contact(&t, &key, json!({ "email": "ada@example.com" })).await;
    b.sign_in(&key).await;
    b.wait_title("Acme").await;
    let zone = b.js_value("return Intl.DateTimeFormat().resolvedOptions().timeZone;").await;
    // ICU may name it by its older alias.
    assert!(zone == json!("Asia/Kolkata") || zone == json!("Asia/Calcutta"), "the browser's zone: {zone}");

    b.open(&format!("/ui/t/{t}/contacts")).await;
    b.wait_text("main table", "ada@example.com").await;
    let time = b
        .js_value(
            "var t = document.querySelector('main table time'); \
             return [t.getAttribute('datetime'), t.getAttribute('title'), t.textContent];",
        )
        .await;
    let (datetime, title, shown) = (time[0].as_str().unwrap(), time[1].as_str().unwrap(), time[2].as_str().unwrap());
    // 2027-01-16T12:07:33Z: India is 5 h 30 min ahead of UTC, all year.
    let (h, m): (u32, u32) = (datetime[11..13].parse().unwrap(), datetime[14..16].parse().unwrap());
    let local = (h * 60 + m + 330) % 1440;
    let twelve = |h: u32| if h % 12 == 0 { 12 } else { h % 12 };
    let (local_clock, utc_clock) =
        (format!("{}:{:02}", twelve(local / 60), local % 60), format!("{}:{m:02}", twelve(h)));
    assert!(shown.contains(&local_clock), "{datetime} is {local_clock} in India; the page shows {shown:?}");
    assert!(!shown.contains(&utc_clock) && !shown.contains("UTC"), "the page shows UTC: {shown:?}");
    assert!(title.ends_with(" UTC") && title.contains(&format!("{:02}:{m:02}", h)), "hover: {title}");
    b.check_page("contacts-in-india").await;
    b.finish().await;
}
