//! What a recipient receives. Two ways to write content:
//!
//! - inline (the seed's `subject`/`html`): only `{{first_name}}` (the contact's
//!   first name, or `there`), `{{unsubscribe_url}}` and `{{preferences_url}}` are replaced, by hand
//!   rather than with a template engine on purpose — tenants' HTML is sent as
//!   written, so other braces, `{%` or `{#` pass through untouched;
//! - templates (`template`): minijinja, with the checks untrusted templates need.
//!
//! Values placed into HTML are escaped either way, so a first name of
//! `<script>` arrives as text, never as markup. Campaign mail (and
//! transactional mail that asks for it) carries RFC 8058 one-click
//! unsubscribe headers and a footer with whichever of its two links (unsubscribe,
//! preferences) the content does not place itself.

pub mod footer_texts;
pub mod isolation;
pub mod starters;
pub mod template;
pub mod unsubscribe;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use serde_json::{json, Map, Value};

use crate::domain::strip_header_unsafe;
use crate::domain::ClaimedMessage;
use crate::provider::{EmailTag, OutgoingEmail};
use isolation::{Caller, Job, Outcome, RenderProcessError, RenderProcesses};
use template::TemplateError;
use unsubscribe::{MailLinks, Missing, UnsubscribeLinks};

const FALLBACK_NAME: &str = "there";
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Html,
    Text,
}

/// Replaces every `{{first_name}}` (spaces inside the braces allowed) in `template`.
pub fn personalise(template: &str, first_name: Option<&str>, ctx: Context) -> String {
    substitute(template, first_name, None, ctx)
}

/// Replaces `{{first_name}}` and, when links are given, `{{unsubscribe_url}}` and `{{preferences_url}}`.
fn substitute(template: &str, first_name: Option<&str>, links: Option<&MailLinks>, ctx: Context) -> String {
    // A stored name never brings a line break (or any control character) with it.
    let name = first_name.map(strip_header_unsafe);
    let name = name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(FALLBACK_NAME);
    let name = escaped(name, ctx);
    let link = links.map(|l| escaped(&l.unsubscribe, ctx));
    let preferences = links.map(|l| escaped(&l.preferences, ctx));
    let mut out = String::with_capacity(template.len() + name.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| match after[..end].trim() {
            "first_name" => Some((end, name.as_ref())),
            "unsubscribe_url" => link.as_deref().map(|l| (end, l)),
            "preferences_url" => preferences.as_deref().map(|l| (end, l)),
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

/// `v` as it goes into content of `ctx`: borrowed unless something must be
/// escaped (a link never needs it: a URL-safe token on the operator's
/// `PUBLIC_URL`, so the fan-out copies none per email).
fn escaped(v: &str, ctx: Context) -> std::borrow::Cow<'_, str> {
    match ctx {
        Context::Html if v.contains(['&', '<', '>', '"', '\'']) => escape_html(v).into(),
        _ => v.into(),
    }
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

/// Inline content for one recipient, as the outbox renders it (before the
/// footer and headers): the outbox's and the inline preview's one way.
pub fn render_inline(
    subject: &str,
    html: &str,
    text: Option<&str>,
    first_name: Option<&str>,
    links: Option<&MailLinks>,
) -> Rendered {
    Rendered {
        subject: substitute(subject, first_name, None, Context::Text),
        html: substitute(html, first_name, links, Context::Html),
        text: text.map(|t| substitute(t, first_name, links, Context::Text)),
    }
}

/// Whether inline content places `{{name}}` (`unsubscribe_url`, `preferences_url`) itself.
fn places_link_inline(content: &str, name: &str) -> bool {
    content.split("{{").skip(1).any(|part| part.split("}}").next().is_some_and(|v| v.trim() == name))
}

/// The values a template sees for one recipient.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Recipient {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The contact's attributes: a JSON object, as text (read in the worker,
    /// so its nesting is measured from its own top, as when it was accepted).
    pub attributes: String,
    /// The send's `variables`: a JSON object, as text.
    pub variables: String,
    pub unsubscribe_url: Option<String>,
    /// The preference centre (`/p/{token}`).
    #[serde(default)]
    pub preferences_url: Option<String>,
    /// A double opt-in's confirmation link (`/c/{token}`), when the send's
    /// `confirm_url` variable is a genuine one (mailroom's own link, like
    /// the two above: not escaped).
    #[serde(default)]
    pub confirm_url: Option<String>,
    pub tenant_name: String,
}

impl Recipient {
    /// The template context: the send's variables at the top level (and as
    /// `variables`), then `contact`, `first_name` (absent when the contact has
    /// none, so `default('there')` applies), `unsubscribe_url`, `preferences_url` and `tenant`,
    /// which a variable of the same name cannot replace.
    pub fn context(&self) -> minijinja::Value {
        let object = |raw: &str| match serde_json::from_str(raw) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let variables = object(&self.variables);
        let mut map = variables.clone();
        map.insert("variables".into(), Value::Object(variables));
        map.insert(
            "contact".into(),
            json!({ "email": self.email, "first_name": self.first_name, "last_name": self.last_name,
                    "attributes": object(&self.attributes) }),
        );
        match self.first_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => map.insert("first_name".into(), json!(name)),
            None => map.remove("first_name"),
        };
        map.remove("unsubscribe_url");
        map.remove("preferences_url");
        map.insert("tenant".into(), json!({ "name": self.tenant_name }));
        let mut ctx: std::collections::BTreeMap<String, minijinja::Value> =
            map.into_iter().map(|(k, v)| (k, minijinja::Value::from_serialize(&v))).collect();
        // mailroom's own links need no escaping (`/` would become `&#x2f;`), unless
        // PUBLIC_URL itself holds a character HTML would misread.
        let own = |link: Option<&str>| {
            let link = link.unwrap_or("");
            if link.contains(['"', '\'', '<', '>', '&']) {
                minijinja::Value::from(link)
            } else {
                minijinja::Value::from_safe_string(link.to_owned())
            }
        };
        ctx.insert("unsubscribe_url".into(), own(self.unsubscribe_url.as_deref()));
        ctx.insert("preferences_url".into(), own(self.preferences_url.as_deref()));
        if let Some(url) = self.confirm_url.as_deref() {
            ctx.insert("confirm_url".into(), own(Some(url)));
        }
        minijinja::Value::from(ctx)
    }
}

/// A rendered subject, html and text.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
}

/// Renders mail. Tenants' templates are compiled and run only in the
/// [`RenderProcesses`]'s worker processes, never here (minijinja folds constants while
/// it compiles, and its parser recurses: both are the template's to abuse).
/// Unsubscribe links are signed with the server's secret.
pub struct Renderer {
    links: UnsubscribeLinks,
    max_output: usize,
    /// Most bytes one job brings back (see [`Job::budget`]).
    budget: usize,
    processes: RenderProcesses,
    /// Each tenant's turn at the interactive workers (see [`Renderer::turn`]).
    turns: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A render that did not happen: the template's fault, or no renderer.
pub type Checked<T> = Result<Result<T, TemplateError>, RenderProcessError>;

impl Renderer {
    /// `max_output` bounds a rendered part in bytes (`MAILROOM_MAX_HTML_BYTES`);
    /// `budget` what one job of many recipients may bring back.
    pub fn new(links: UnsubscribeLinks, max_output: usize, budget: usize, processes: RenderProcesses) -> Self {
        Self { links, max_output, budget: budget.max(max_output), processes, turns: Default::default() }
    }

    pub fn links(&self) -> &UnsubscribeLinks {
        &self.links
    }

    /// The send's `confirm_url` variable, if it is a genuine confirmation
    /// link of this server (only those are placed unescaped).
    fn genuine_confirm_url(&self, variables: Option<&str>) -> Option<String> {
        let vars: Value = serde_json::from_str(variables?).ok()?;
        let url = vars.get("confirm_url")?.as_str()?;
        let token = url.rsplit_once("/c/")?.1;
        let signup = self.links.verify_confirm(token)?;
        (self.links.confirm_url(&signup)? == url).then(|| url.to_owned())
    }

    fn job<'a>(&self, subject: &'a str, html: &'a str, text: Option<&'a str>, recipients: Vec<Recipient>) -> Job<'a> {
        Job {
            subject: subject.into(),
            html: html.into(),
            text: text.map(Into::into),
            max_output: self.max_output,
            budget: self.budget,
            // Half the deadline: a slow template's job stops short in time.
            budget_ms: u64::try_from(self.processes.timeout().as_millis() / 2).unwrap_or(u64::MAX),
            recipients: recipients.into(),
            fuel: None,
            self_contained: false,
        }
    }

    /// Waits for this tenant's turn at the interactive workers: one preview or
    /// check at a time per tenant, so one tenant's slow templates never take
    /// every worker from the others.
    async fn turn(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        let queue =
            self.turns.lock().ok()?.entry(tenant.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(1))).clone();
        queue.acquire_owned().await.ok()
    }

    /// One job for one recipient of `tenant`, at the interactive workers, in
    /// its turn; a stopped job is the template's fault.
    async fn interactive(&self, tenant: &str, job: &Job<'_>) -> Checked<Outcome> {
        let _turn = self.turn(tenant).await;
        match self.processes.render(Caller::Interactive, job).await {
            Ok(Outcome { compiled: Err(e), .. }) => Ok(Err(e)),
            Ok(outcome) => Ok(Ok(outcome)),
            Err(RenderProcessError::Limit(reason)) => Ok(Err(stopped(reason))),
            Err(e) => Err(e),
        }
    }

    /// The check a template gets when saved, in one job: its syntax, no
    /// `include`, `import`, `extends` or `from`, and a render for each of
    /// `samples` that must not run away with half of the fuel a send has
    /// (fuel, not time: the same answer on a loaded machine). Other render
    /// errors may depend on the data a real send brings, and are left to the
    /// send.
    pub async fn check(
        &self,
        tenant: &str,
        subject: &str,
        html: &str,
        text: Option<&str>,
        samples: Vec<Recipient>,
    ) -> Checked<()> {
        let job =
            Job { fuel: Some(template::FUEL / 2), self_contained: true, ..self.job(subject, html, text, samples) };
        let outcome = self.interactive(tenant, &job).await?;
        Ok(outcome.and_then(|o| match o.rendered.into_iter().find_map(|r| r.err().filter(|e| e.runaway)) {
            Some(mut e) => {
                if e.message.contains("fuel limit") {
                    e.message = format!(
                        "the template needs more than half of the render fuel ({} instructions) for a sample \
                         recipient (its sample_variables, or one of the first contacts): check its loops",
                        template::FUEL / 2
                    );
                }
                Err(e)
            }
            None => Ok(()),
        }))
    }

    /// Renders a template for one recipient of `tenant`, for a preview: the
    /// text part is derived from the html when the template has none.
    pub async fn render_template(
        &self,
        tenant: &str,
        subject: &str,
        html: &str,
        text: Option<&str>,
        to: Recipient,
    ) -> Checked<Rendered> {
        let outcome = self.interactive(tenant, &self.job(subject, html, text, vec![to])).await?;
        Ok(outcome.and_then(|mut o| o.rendered.pop().unwrap_or_else(|| Err(stopped("no answer".into())))))
    }

    /// The provider's JSON for the claimed messages, in order, each tagged with
    /// its tenant and its campaign or message so delivery events can be traced
    /// back. A message's error is a template that cannot be rendered for its
    /// recipient. The answers may stop short of the last messages (a job
    /// brings back at most its budget): those are left for a later claim. The
    /// whole call fails only when no renderer can be started.
    pub async fn emails_json(&self, ms: &[ClaimedMessage]) -> Result<Vec<Result<String, String>>, RenderProcessError> {
        // One HMAC per email: both links carry the same token.
        let links: Vec<Option<MailLinks>> =
            ms.iter().map(|m| if m.list_unsubscribe == 1 { self.links.urls(&m.id) } else { None }).collect();
        // Templated messages, one job per template (a campaign's claim is one job).
        let mut rendered: Vec<Option<Result<Rendered, String>>> = ms.iter().map(|_| None).collect();
        let mut groups: BTreeMap<(&str, &str, Option<&str>), Vec<usize>> = BTreeMap::new();
        for (i, m) in ms.iter().enumerate().filter(|(_, m)| m.templated == 1) {
            groups.entry((&m.subject, &m.html, m.text_body.as_deref())).or_default().push(i);
        }
        for ((subject, html, text), members) in groups {
            let recipients: Vec<Recipient> = members
                .iter()
                .map(|&i| Recipient {
                    email: ms[i].to_email.clone(),
                    first_name: ms[i].first_name.clone(),
                    last_name: ms[i].last_name.clone(),
                    attributes: ms[i].attributes.clone().unwrap_or_default(),
                    variables: ms[i].variables.clone().unwrap_or_default(),
                    unsubscribe_url: links[i].as_ref().map(|l| l.unsubscribe.clone()),
                    preferences_url: links[i].as_ref().map(|l| l.preferences.clone()),
                    confirm_url: self.genuine_confirm_url(ms[i].variables.as_deref()),
                    tenant_name: ms[i].tenant_name.clone(),
                })
                .collect();
            let job = self.job(subject, html, text, recipients);
            let answers: Vec<Result<Rendered, String>> = match self.processes.render(Caller::Outbox, &job).await {
                Ok(Outcome { compiled: Err(e), .. }) => members.iter().map(|_| Err(e.to_string())).collect(),
                Ok(outcome) => outcome.rendered.into_iter().map(|r| r.map_err(|e| e.to_string())).collect(),
                Err(RenderProcessError::Limit(_)) if members.len() > 1 => self.render_each(&job).await?,
                Err(e @ RenderProcessError::Limit(_)) => vec![Err(e.to_string())],
                Err(e @ RenderProcessError::Unavailable(_)) => return Err(e),
            };
            for (&i, answer) in members.iter().zip(answers) {
                rendered[i] = Some(answer);
            }
        }
        let mut emails = Vec::with_capacity(ms.len());
        for ((m, rendered), link) in ms.iter().zip(rendered).zip(links) {
            let content = match rendered {
                Some(Ok(r)) => {
                    let places = (m.html.contains("unsubscribe_url"), m.html.contains("preferences_url"));
                    Ok((r.subject, r.html, r.text, places))
                }
                Some(Err(e)) => Err(format!("the template cannot be rendered for this recipient: {e}")),
                // Past the job's budget: this one and the rest wait for a later claim.
                None if m.templated == 1 => break,
                None => {
                    let r = render_inline(
                        &m.subject,
                        &m.html,
                        m.text_body.as_deref(),
                        m.first_name.as_deref(),
                        link.as_ref(),
                    );
                    let places = (
                        places_link_inline(&m.html, "unsubscribe_url"),
                        places_link_inline(&m.html, "preferences_url"),
                    );
                    Ok((r.subject, r.html, r.text, places))
                }
            };
            emails.push(
                content.and_then(|content| {
                    serde_json::to_string(&self.email(m, link, content)).map_err(|e| e.to_string())
                }),
            );
        }
        Ok(emails)
    }

    /// A job the render processes stopped, again one recipient at a time from the
    /// first, so that a template that runs away only for some recipients fails
    /// only theirs. It stops at the first recipient stopped again (that one
    /// fails, with the reason), or once the job's budget of bytes or time is
    /// spent: the recipients after that are left for a later claim, never
    /// failed untried.
    async fn render_each(&self, job: &Job<'_>) -> Result<Vec<Result<Rendered, String>>, RenderProcessError> {
        let started = std::time::Instant::now();
        let mut answers = Vec::with_capacity(job.recipients.len());
        let mut total = 0usize;
        for to in job.recipients.iter() {
            let one = self.job(&job.subject, &job.html, job.text.as_deref(), vec![to.clone()]);
            match self.processes.render(Caller::Outbox, &one).await {
                Ok(Outcome { compiled: Err(e), .. }) => answers.push(Err(e.to_string())),
                Ok(mut a) => {
                    let r = a.rendered.pop().unwrap_or_else(|| Err(stopped("no answer".into())));
                    if let Ok(r) = &r {
                        total += r.subject.len() + r.html.len() + r.text.as_ref().map_or(0, String::len);
                    }
                    answers.push(r.map_err(|e| e.to_string()));
                }
                Err(RenderProcessError::Limit(reason)) => {
                    answers.push(Err(reason));
                    break;
                }
                Err(e @ RenderProcessError::Unavailable(_)) => return Err(e),
            }
            if total >= job.budget || started.elapsed() > self.processes.timeout() {
                break;
            }
        }
        Ok(answers)
    }

    /// The email for a message whose content is rendered: footer, headers, tags.
    /// `placed` says whether the content places the unsubscribe and the
    /// preferences link itself: the footer adds the ones it does not.
    fn email(
        &self,
        m: &ClaimedMessage,
        link: Option<MailLinks>,
        (subject, mut html, mut text, placed): (String, String, Option<String>, (bool, bool)),
    ) -> OutgoingEmail {
        let mut tags = vec![EmailTag::new("tenant", &m.tenant_id), EmailTag::new("message", &m.id)];
        if let Some(c) = &m.campaign_id {
            tags.push(EmailTag::new("campaign", c));
        }
        if let Some(extra) = m.tags.as_deref().and_then(|t| serde_json::from_str::<Vec<EmailTag>>(t).ok()) {
            tags.extend(extra);
        }
        if let Some(l) = link.as_ref().filter(|_| m.unsubscribe_footer == 1) {
            let missing = Missing {
                unsubscribe: (!placed.0).then_some(l.unsubscribe.as_str()),
                preferences: (!placed.1).then_some(l.preferences.as_str()),
            };
            let words = footer_texts::footer_texts(crate::domain::Locale::from_stored(&m.tenant_locale));
            html = unsubscribe::html_footer(&html, &missing, words);
            text = text.map(|t| unsubscribe::text_footer(&t, &missing, words));
        }
        let headers = link.map(|l| {
            BTreeMap::from([
                ("List-Unsubscribe".to_owned(), format!("<{}>", l.unsubscribe)),
                ("List-Unsubscribe-Post".to_owned(), "List-Unsubscribe=One-Click".to_owned()),
            ])
        });
        OutgoingEmail {
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
        }
    }
}

/// A render the render processes stopped: the template's fault, whatever the data.
fn stopped(message: String) -> TemplateError {
    TemplateError { part: template::HTML, line: None, column: None, message, runaway: true }
}

impl crate::domain::RenderClaimed for Renderer {
    async fn render_claimed(&self, ms: &[ClaimedMessage]) -> anyhow::Result<Vec<Result<String, String>>> {
        Ok(self.emails_json(ms).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> Renderer {
        Renderer::new(
            UnsubscribeLinks::new("secret", "https://mail.test"),
            100_000,
            1_000_000,
            RenderProcesses::in_process(),
        )
    }

    #[tokio::test]
    async fn the_unsubscribe_link_goes_into_a_template_unescaped_but_variables_are_escaped() {
        let to = Recipient {
            email: "a@example.org".into(),
            first_name: None,
            last_name: None,
            attributes: "{}".into(),
            variables: json!({ "url": "https://x.test/a?b=1&c=2", "unsubscribe_url": "javascript:alert(1)" })
                .to_string(),
            unsubscribe_url: Some("https://mail.test/u/abc".into()),
            preferences_url: Some("https://mail.test/p/abc".into()),
            confirm_url: None,
            tenant_name: "T".into(),
        };
        let r = renderer()
            .render_template("t", "s", "<a href=\"{{ unsubscribe_url }}\">{{ url }}</a>", None, to)
            .await
            .unwrap()
            .unwrap();
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

    #[tokio::test]
    async fn a_stored_name_with_a_line_break_cannot_add_a_header_to_the_subject() {
        let m = crate::domain::ClaimedMessage {
            id: "m".into(),
            tenant_id: "t".into(),
            campaign_id: None,
            to_email: "a@example.org".into(),
            first_name: Some("Ada\r\nBcc: victim@example.org".into()),
            from_address: "hello@acme.com".into(),
            subject: "Hi {{first_name}}\u{2028}".into(),
            html: "<p>{{first_name}}</p>".into(),
            ..crate::domain::ClaimedMessage::default()
        };
        let json = renderer().emails_json(std::slice::from_ref(&m)).await.unwrap().remove(0).unwrap();
        let email: Value = serde_json::from_str(&json).unwrap();
        let subject = email["subject"].as_str().unwrap();
        assert_eq!(subject, "Hi AdaBcc: victim@example.org");
        assert!(!subject.chars().any(crate::domain::is_header_unsafe));
    }

    #[test]
    fn other_braces_pass_through_untouched() {
        let t = "{{other}} {{ {% x %} {{first_name}} {{";
        assert_eq!(personalise(t, Some("Ada"), Context::Html), "{{other}} {{ {% x %} Ada {{");
    }
}
