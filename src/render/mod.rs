//! Personalisation: `{{first_name}}` in subject, html and text becomes the
//! contact's first name, or `there` when it has none.
//!
//! Hand-written rather than a template engine on purpose: tenants' HTML is sent
//! as written, so braces, `{%` or `{#` in it must pass through untouched (a
//! template engine would reject or rewrite them). Values placed into HTML are
//! escaped, so a first name of `<script>` arrives as text, never as markup.

use crate::domain::strip_header_unsafe;
use crate::provider::{EmailTag, OutgoingEmail};
use crate::store::ClaimedMessage;

const FALLBACK_NAME: &str = "there";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Html,
    Text,
}

/// Replaces every `{{first_name}}` (spaces inside the braces allowed) in `template`.
pub fn personalise(template: &str, first_name: Option<&str>, ctx: Context) -> String {
    // A stored name never brings a line break (or any control character) with it.
    let name = first_name.map(strip_header_unsafe);
    let name = name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(FALLBACK_NAME);
    let value = match ctx {
        Context::Html => escape_html(name),
        Context::Text => name.to_owned(),
    };
    let mut out = String::with_capacity(template.len() + value.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if after[..end].trim() == "first_name" => {
                out.push_str(&rest[..start]);
                out.push_str(&value);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The email for one claimed message, tagged with its tenant and its campaign
/// or message so delivery events can be traced back.
pub fn outgoing_email(m: &ClaimedMessage) -> OutgoingEmail {
    let first = m.first_name.as_deref();
    let mut tags = vec![EmailTag::new("tenant", &m.tenant_id), EmailTag::new("message", &m.id)];
    if let Some(c) = &m.campaign_id {
        tags.push(EmailTag::new("campaign", c));
    }
    if let Some(extra) = m.tags.as_deref().and_then(|t| serde_json::from_str::<Vec<EmailTag>>(t).ok()) {
        tags.extend(extra);
    }
    OutgoingEmail {
        from: m.from_address.clone(),
        to: vec![m.to_email.clone()],
        // A subject is plain text in a header: not HTML-escaped, and whatever
        // was stored, nothing in it can start a new header line.
        subject: strip_header_unsafe(&personalise(&m.subject, first, Context::Text)).into_owned(),
        html: personalise(&m.html, first, Context::Html),
        text: m.text_body.as_deref().map(|t| personalise(t, first, Context::Text)),
        reply_to: m.reply_to.clone(),
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_name_is_inserted_or_falls_back_to_there() {
        assert_eq!(personalise("Hi {{first_name}}!", Some("Ada"), Context::Text), "Hi Ada!");
        assert_eq!(personalise("Hi {{ first_name }}!", None, Context::Text), "Hi there!");
        assert_eq!(personalise("Hi {{first_name}}", Some("  "), Context::Html), "Hi there");
    }

    #[test]
    fn names_are_escaped_in_html_but_not_in_text() {
        let html = personalise("<p>{{first_name}}</p>", Some("<script>x</script>"), Context::Html);
        assert_eq!(html, "<p>&lt;script&gt;x&lt;/script&gt;</p>");
        assert_eq!(personalise("{{first_name}}", Some("A&B"), Context::Text), "A&B");
    }

    #[test]
    fn a_stored_name_with_a_line_break_cannot_add_a_header_to_the_subject() {
        let m = crate::store::ClaimedMessage {
            id: "m".into(),
            tenant_id: "t".into(),
            campaign_id: None,
            to_email: "a@example.org".into(),
            first_name: Some("Ada\r\nBcc: victim@example.org".into()),
            from_address: "hello@acme.com".into(),
            subject: "Hi {{first_name}}\u{2028}".into(),
            html: "<p>{{first_name}}</p>".into(),
            text_body: None,
            reply_to: None,
            tags: None,
            blocked: 0,
        };
        let email = outgoing_email(&m);
        assert_eq!(email.subject, "Hi AdaBcc: victim@example.org");
        assert!(!email.subject.chars().any(crate::domain::is_header_unsafe));
    }

    #[test]
    fn other_braces_pass_through_untouched() {
        let t = "{{other}} {{ {% x %} {{first_name}} {{";
        assert_eq!(personalise(t, Some("Ada"), Context::Html), "{{other}} {{ {% x %} Ada {{");
    }
}
