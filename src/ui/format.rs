//! How the dashboard writes values for the people who read it: times as
//! `<time>` elements (UTC on the server, the viewer's local and relative time
//! once `app.js` has run, the exact UTC time on hover), counts with thousands
//! separators, delivery events by name ("Marked as spam"), and a provider's
//! refusal explained in a line. Registered as template filters.

use minijinja::{Environment, Value};
use time::OffsetDateTime;

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("when", when);
    env.add_filter("num", num);
    env.add_filter("count", count);
    env.add_filter("event_name", event_name);
    env.add_filter("explain", explain);
    env.add_filter("subject_title", subject_title);
}

/// A campaign's subject as a title: rendered for a recipient without a name
/// (`Hi {{first_name}}` is "Hi there"), any other template tag left out.
pub fn subject_title(value: &str) -> String {
    let rendered = crate::render::personalise(value, None, crate::render::Context::Text);
    let mut out = String::with_capacity(rendered.len());
    let mut rest = rendered.as_str();
    let opening = |s: &str| ["{{", "{%", "{#"].iter().filter_map(|o| s.find(o).map(|i| (i, *o))).min();
    while let Some((start, open)) = opening(rest) {
        let close = match open {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        out.push_str(&rest[..start]);
        // An unclosed tag: the rest is template source, not words.
        let Some(end) = rest[start + 2..].find(close) else { break };
        out.push('…');
        rest = &rest[start + 2 + end + 2..];
        if rest.is_empty() {
            break;
        }
    }
    if opening(rest).is_none() {
        out.push_str(rest);
    }
    let title = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        "(no subject)".to_owned()
    } else {
        title
    }
}

/// An RFC 3339 time (as the API answers it) or epoch milliseconds, as a
/// `<time>` element without milliseconds; anything else as it is.
fn when(value: Value) -> Value {
    let ms = match value.as_str() {
        Some(raw) => crate::domain::parse_rfc3339(raw).ok(),
        None => i64::try_from(value.clone()).ok(),
    };
    let Some(t) = ms.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()) else {
        return if value.is_none() || value.is_undefined() { Value::from("—") } else { value };
    };
    let (y, mo, d, h, mi, s) = (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    Value::from_safe_string(format!(
        "<time datetime=\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z\" title=\"{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC\">\
         {y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC</time>"
    ))
}

/// An integer with thousands separators (`11,108`); anything else as it is.
fn num(value: Value) -> Value {
    match i64::try_from(value.clone()) {
        Ok(n) => Value::from(thousands(n)),
        Err(_) => value,
    }
}

/// `n` with thousands separators (`11,108`), as the `num` filter writes it:
/// for figures formatted outside a template (a live page's poll).
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many of something, in words: `1 contact`, `11,108 contacts`
/// (`many` when the plural is not the noun and an s).
fn count(value: Value, one: &str, many: Option<&str>) -> String {
    let noun = match i64::try_from(value.clone()) {
        Ok(1) => one.to_owned(),
        _ => many.map_or_else(|| format!("{one}s"), str::to_owned),
    };
    format!("{} {noun}", num(value))
}

/// A delivery event's type (`email.complained`, or without the prefix) as
/// people say it.
fn event_name(value: &str) -> String {
    let name = match value.strip_prefix("email.").unwrap_or(value) {
        "sent" => "Sent",
        "delivered" => "Delivered",
        "delivery_delayed" => "Delivery delayed",
        "bounced" => "Bounced",
        "complained" => "Marked as spam",
        "opened" => "Opened",
        "clicked" => "Clicked",
        "failed" => "Failed",
        "scheduled" => "Scheduled",
        "suppressed" => "Suppressed by the provider",
        "queued" => "Queued",
        other => return other.replace('_', " "),
    };
    name.to_owned()
}

/// One plain line on why the provider (or mailroom) gave up on a message,
/// from the raw error it recorded; empty when there is nothing to add.
fn explain(value: Option<&str>) -> &'static str {
    let raw = value.unwrap_or("").to_ascii_lowercase();
    let has = |needle: &str| raw.contains(needle);
    if has("domain") && (has("not verified") || has("verify")) {
        "The sending domain is not verified with the provider: verify it on the overview, then retry."
    } else if has("invalid_api_key") || has("missing_api_key") || has("restricted_api_key") || has("http_401") {
        "The provider refused mailroom's API key: check RESEND_API_KEY, then retry."
    } else if has("daily_quota_exceeded") || has("monthly_quota_exceeded") {
        "The provider account's sending quota is used up; retry once it resets."
    } else if has("rate_limit_exceeded") || has("http_429") {
        "The provider kept answering \"too many requests\" until the attempts ran out; retry later."
    } else if has("invalid_idempotent_request") {
        "The provider had seen this batch before with different content, so it refused it."
    } else if has("invalid_from_address") || has("from") && has("address") && has("invalid") {
        "The From address is not one the provider accepts for this domain."
    } else if has("timeout") || has("network_error") {
        "mailroom could not reach the provider (network error or timeout) before the attempts ran out."
    } else if has("http_5") || has("internal_server_error") || has("application_error") {
        "The provider had an internal error each time; retrying later usually works."
    } else if has("render") || has("template") {
        "The email could not be written from its template for this recipient: fix the template, then retry."
    } else if has("too large") || has("http_413") || has("size") {
        "The email is larger than the provider accepts."
    } else if has("`to`") || has("to field") || has("recipient") {
        "The provider does not accept the recipient's address; correct the contact, then retry."
    } else if has("validation_error") || has("invalid") {
        "The provider refused the email as written (an address or a field it does not accept)."
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_time_elements_in_utc_without_milliseconds() {
        let html = when(Value::from("2026-12-07T15:03:05.123Z")).to_string();
        assert_eq!(
            html,
            "<time datetime=\"2026-12-07T15:03:05Z\" title=\"2026-12-07 15:03:05 UTC\">2026-12-07 15:03 UTC</time>"
        );
        assert_eq!(when(Value::from("not a time")).to_string(), "not a time");
        assert_eq!(when(Value::from(())).to_string(), "—");
    }

    #[test]
    fn campaign_titles_never_show_template_tags() {
        assert_eq!(subject_title("Hi {{first_name}}, spring is here"), "Hi there, spring is here");
        assert_eq!(subject_title("{{ product | upper }} is back{% if x %}!{% endif %}"), "… is back…!…");
        assert_eq!(subject_title("Plain { braces }"), "Plain { braces }");
        assert_eq!(subject_title("{{first_name"), "(no subject)");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(num(Value::from(11108)).to_string(), "11,108");
        assert_eq!(num(Value::from(999)).to_string(), "999");
        assert_eq!(num(Value::from(-1234567)).to_string(), "-1,234,567");
        assert_eq!(num(Value::from(0)).to_string(), "0");
    }

    #[test]
    fn counts_name_what_they_count() {
        assert_eq!(count(Value::from(1), "contact", None), "1 contact");
        assert_eq!(count(Value::from(11108), "contact", None), "11,108 contacts");
        assert_eq!(count(Value::from(0), "address", Some("addresses")), "0 addresses");
    }

    #[test]
    fn events_have_the_names_people_use() {
        assert_eq!(event_name("email.complained"), "Marked as spam");
        assert_eq!(event_name("delivered"), "Delivered");
        assert_eq!(event_name("email.something_new"), "something new");
    }

    #[test]
    fn provider_refusals_get_a_plain_explanation() {
        assert!(explain(Some("validation_error: The mail.acme.test domain is not verified")).contains("not verified"));
        assert!(explain(Some("rate_limit_exceeded: Too many requests")).contains("too many requests"));
        assert!(explain(Some("validation_error: Invalid `to` field: bad@example.org")).contains("recipient's address"));
        assert_eq!(explain(Some("something nobody knows")), "");
        assert_eq!(explain(None), "");
    }
}
