//! What a recipient receives. Two ways to write content:
//!
//! - inline (the seed's `subject`/`html`): only `{{first_name}}` (the contact's
//!   first name, or `there`) and `{{unsubscribe_url}}` are replaced, by hand
//!   rather than with a template engine on purpose — tenants' HTML is sent as
//!   written, so other braces, `{%` or `{#` pass through untouched;
//! - templates (`template`): minijinja, with the checks untrusted templates need.
//!
//! Values placed into HTML are escaped either way, so a first name of
//! `<script>` arrives as text, never as markup. Campaign mail (and
//! transactional mail that asks for it) carries RFC 8058 one-click
//! unsubscribe headers and, unless the content places the link itself, a footer.

pub mod starters;
pub mod template;
pub mod unsubscribe;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::domain::strip_header_unsafe;
use crate::provider::{EmailTag, OutgoingEmail};
use crate::store::ClaimedMessage;
use template::{Compiled, TemplateError};
use unsubscribe::UnsubscribeLinks;

const FALLBACK_NAME: &str = "there";
/// Compiled templates kept for reuse (a campaign renders one template many times).
const CACHE_ENTRIES: usize = 64;
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Html,
    Text,
}

/// Replaces every `{{first_name}}` (spaces inside the braces allowed) in `template`.
pub fn personalise(template: &str, first_name: Option<&str>, ctx: Context) -> String {
    substitute(template, first_name, None, ctx)
}

/// Replaces `{{first_name}}` and, when a link is given, `{{unsubscribe_url}}`.
fn substitute(template: &str, first_name: Option<&str>, unsubscribe_url: Option<&str>, ctx: Context) -> String {
    // A stored name never brings a line break (or any control character) with it.
    let name = first_name.map(strip_header_unsafe);
    let name = name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(FALLBACK_NAME);
    let escape = |v: &str| match ctx {
        Context::Html => escape_html(v),
        Context::Text => v.to_owned(),
    };
    let name = escape(name);
    let link = unsubscribe_url.map(escape);
    let mut out = String::with_capacity(template.len() + name.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| match after[..end].trim() {
            "first_name" => Some((end, name.as_str())),
            "unsubscribe_url" => link.as_deref().map(|l| (end, l)),
            _ => None,
        });
        match value {
            Some((end, value)) => {
                out.push_str(&rest[..start]);
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
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

/// Whether inline content places `{{unsubscribe_url}}` itself.
fn places_link_inline(content: &str) -> bool {
    content.split("{{").skip(1).any(|part| part.split("}}").next().is_some_and(|v| v.trim() == "unsubscribe_url"))
}

/// The values a template sees for one recipient.
pub struct Recipient<'a> {
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    /// The contact's attributes (a JSON object).
    pub attributes: Value,
    /// The send's `variables` (a JSON object).
    pub variables: Value,
    pub unsubscribe_url: Option<&'a str>,
    pub tenant_name: &'a str,
}

impl Recipient<'_> {
    /// The template context: the send's variables at the top level (and as
    /// `variables`), then `contact`, `first_name` (absent when the contact has
    /// none, so `default('there')` applies), `unsubscribe_url` and `tenant`,
    /// which a variable of the same name cannot replace.
    pub fn context(&self) -> minijinja::Value {
        let mut map = match &self.variables {
            Value::Object(vars) => vars.clone(),
            _ => Map::new(),
        };
        map.insert("variables".into(), self.variables.clone());
        map.insert(
            "contact".into(),
            json!({ "email": self.email, "first_name": self.first_name, "last_name": self.last_name, "attributes": self.attributes }),
        );
        match self.first_name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => map.insert("first_name".into(), json!(name)),
            None => map.remove("first_name"),
        };
        map.remove("unsubscribe_url");
        map.insert("tenant".into(), json!({ "name": self.tenant_name }));
        let mut ctx: std::collections::BTreeMap<String, minijinja::Value> =
            map.into_iter().map(|(k, v)| (k, minijinja::Value::from_serialize(&v))).collect();
        // mailroom's own link needs no escaping (`/` would become `&#x2f;`), unless
        // PUBLIC_URL itself holds a character HTML would misread.
        let link = self.unsubscribe_url.unwrap_or("");
        let link = if link.contains(['"', '\'', '<', '>', '&']) {
            minijinja::Value::from(link)
        } else {
            minijinja::Value::from_safe_string(link.to_owned())
        };
        ctx.insert("unsubscribe_url".into(), link);
        minijinja::Value::from(ctx)
    }
}

/// A rendered subject, html and text.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
}

/// Renders mail: compiled templates are cached by their source, and the
/// unsubscribe links are signed with the server's secret.
pub struct Renderer {
    links: UnsubscribeLinks,
    max_output: usize,
    cache: Mutex<HashMap<[u8; 32], Arc<Compiled>>>,
}

impl Renderer {
    /// `max_output` bounds a rendered part in bytes (`MAILROOM_MAX_HTML_BYTES`).
    pub fn new(links: UnsubscribeLinks, max_output: usize) -> Self {
        Self { links, max_output, cache: Mutex::new(HashMap::new()) }
    }

    pub fn links(&self) -> &UnsubscribeLinks {
        &self.links
    }

    /// Compiles a template (or takes it from the cache).
    pub fn compile(&self, subject: &str, html: &str, text: Option<&str>) -> Result<Arc<Compiled>, TemplateError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [Some(subject), Some(html), text] {
            let part = part.unwrap_or("\0none");
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let key: [u8; 32] = h.finalize().into();
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let compiled = Arc::new(Compiled::new(subject, html, text, self.max_output)?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Renders a template for one recipient; the text part is derived from the
    /// html when the template has none.
    pub fn render_template(
        &self,
        subject: &str,
        html: &str,
        text: Option<&str>,
        to: &Recipient<'_>,
    ) -> Result<Rendered, TemplateError> {
        let (subject, html, text) = self.compile(subject, html, text)?.render(&to.context())?;
        let text = text.unwrap_or_else(|| template::html_to_text(&html));
        Ok(Rendered { subject, html, text: Some(text) })
    }

    /// The email for one claimed message, tagged with its tenant and its
    /// campaign or message so delivery events can be traced back. An error is
    /// a template that cannot be rendered for this recipient.
    pub fn email(&self, m: &ClaimedMessage) -> Result<OutgoingEmail, String> {
        let mut tags = vec![EmailTag::new("tenant", &m.tenant_id), EmailTag::new("message", &m.id)];
        if let Some(c) = &m.campaign_id {
            tags.push(EmailTag::new("campaign", c));
        }
        if let Some(extra) = m.tags.as_deref().and_then(|t| serde_json::from_str::<Vec<EmailTag>>(t).ok()) {
            tags.extend(extra);
        }
        let link = if m.list_unsubscribe == 1 { self.links.url(&m.id) } else { None };
        let footer = link.as_deref().filter(|_| m.unsubscribe_footer == 1);
        let (subject, mut html, mut text, placed) = if m.templated == 1 {
            let parse = |raw: Option<&str>| raw.and_then(|a| serde_json::from_str(a).ok()).unwrap_or(json!({}));
            let to = Recipient {
                email: &m.to_email,
                first_name: m.first_name.as_deref(),
                last_name: m.last_name.as_deref(),
                attributes: parse(m.attributes.as_deref()),
                variables: parse(m.variables.as_deref()),
                unsubscribe_url: link.as_deref(),
                tenant_name: &m.tenant_name,
            };
            let r = self
                .render_template(&m.subject, &m.html, m.text_body.as_deref(), &to)
                .map_err(|e| format!("the template cannot be rendered for this recipient: {e}"))?;
            (r.subject, r.html, r.text, m.html.contains("unsubscribe_url"))
        } else {
            let first = m.first_name.as_deref();
            let subject = substitute(&m.subject, first, None, Context::Text);
            let html = substitute(&m.html, first, link.as_deref(), Context::Html);
            let text = m.text_body.as_deref().map(|t| substitute(t, first, link.as_deref(), Context::Text));
            (subject, html, text, places_link_inline(&m.html))
        };
        if let (Some(url), false) = (footer, placed) {
            html = unsubscribe::html_footer(&html, url);
            text = text.map(|t| if t.contains(url) { t } else { unsubscribe::text_footer(&t, url) });
        }
        let headers = link.map(|url| {
            BTreeMap::from([
                ("List-Unsubscribe".to_owned(), format!("<{url}>")),
                ("List-Unsubscribe-Post".to_owned(), "List-Unsubscribe=One-Click".to_owned()),
            ])
        });
        Ok(OutgoingEmail {
            from: m.from_address.clone(),
            to: vec![m.to_email.clone()],
            // A subject is plain text in a header: not HTML-escaped, and whatever
            // was stored or rendered, nothing in it can start a new header line.
            subject: strip_header_unsafe(&subject).into_owned(),
            html,
            text,
            reply_to: m.reply_to.clone(),
            headers,
            tags,
        })
    }

    /// The email as the JSON the provider receives.
    pub fn email_json(&self, m: &ClaimedMessage) -> Result<String, String> {
        self.email(m).and_then(|e| serde_json::to_string(&e).map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> Renderer {
        Renderer::new(UnsubscribeLinks::new("secret", "https://mail.test"), 100_000)
    }

    #[test]
    fn the_unsubscribe_link_goes_into_a_template_unescaped_but_variables_are_escaped() {
        let to = Recipient {
            email: "a@example.org",
            first_name: None,
            last_name: None,
            attributes: json!({}),
            variables: json!({ "url": "https://x.test/a?b=1&c=2", "unsubscribe_url": "javascript:alert(1)" }),
            unsubscribe_url: Some("https://mail.test/u/abc"),
            tenant_name: "T",
        };
        let r = renderer().render_template("s", "<a href=\"{{ unsubscribe_url }}\">{{ url }}</a>", None, &to).unwrap();
        assert_eq!(r.html, "<a href=\"https://mail.test/u/abc\">https:&#x2f;&#x2f;x.test&#x2f;a?b=1&amp;c=2</a>");
    }

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
            ..crate::store::ClaimedMessage::default()
        };
        let email = renderer().email(&m).unwrap();
        assert_eq!(email.subject, "Hi AdaBcc: victim@example.org");
        assert!(!email.subject.chars().any(crate::domain::is_header_unsafe));
    }

    #[test]
    fn other_braces_pass_through_untouched() {
        let t = "{{other}} {{ {% x %} {{first_name}} {{";
        assert_eq!(personalise(t, Some("Ada"), Context::Html), "{{other}} {{ {% x %} Ada {{");
    }
}
