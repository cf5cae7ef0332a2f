//! Templates: a tenant's reusable content, rendered with minijinja, versioned
//! on every change. Saving checks a template the way a send would use it.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{parse_id, required_text, Error, Result};
use crate::domain::{rfc3339, TenantId};
use crate::render::{Recipient, Rendered};
use crate::state::AppState;
use crate::store::{ContactFilter, ContactRow, TemplateContent, TemplatePatch, TemplateRow};

const NAME_MAX: usize = 200;
/// RFC 5322's line length: a subject template is no longer than a subject.
const SUBJECT_MAX: usize = 998;
/// Largest `variables` object a send or preview may carry, serialised.
pub const VARIABLES_MAX_BYTES: usize = 64 * 1024;

#[derive(Serialize, ToSchema)]
pub struct Template {
    id: String,
    customer_id: String,
    name: String,
    /// 1 when created; every change adds one.
    version: i64,
    subject: String,
    html: String,
    text: Option<String>,
    /// Variables the check on save renders it with (for a sample recipient and
    /// up to three of the customer's contacts), as a send's `variables` would be.
    #[schema(value_type = Option<Object>)]
    sample_variables: Option<Value>,
    created_at: String,
    /// When this version was made.
    updated_at: String,
}

impl From<TemplateRow> for Template {
    fn from(t: TemplateRow) -> Self {
        Self {
            id: t.id,
            customer_id: t.tenant_id,
            name: t.name,
            version: t.version,
            subject: t.subject,
            html: t.html,
            text: t.text_body,
            sample_variables: t.sample_variables.and_then(|v| serde_json::from_str(&v).ok()),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

/// A send's `variables`: a JSON object of bounded size.
pub fn variables(raw: Option<Value>) -> Result<Value> {
    match raw {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => {
            let size = serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > VARIABLES_MAX_BYTES {
                return Err(Error::validation(format!(
                    "`variables` is {size} bytes; at most {VARIABLES_MAX_BYTES} are accepted"
                )));
            }
            Ok(v)
        }
        Some(_) => Err(Error::validation("`variables` must be a JSON object")),
    }
}

/// How many of the customer's contacts a save renders the template for.
const CHECKED_CONTACTS: i64 = 3;

/// Checks a template's parts: sizes, one-line subject, syntax, that it is
/// self-contained (no `include`, `import`, `extends` or `from`), and a render
/// with its `sample_variables` for a sample recipient and for up to
/// [`CHECKED_CONTACTS`] of the customer's contacts, so that a template that
/// needs more than half of the render fuel (or grows too large) for any of
/// them is refused when saved, not when sent. Other render errors may depend
/// on the data a real send brings: a send reports those per recipient (and
/// pauses a campaign whose renders keep failing).
async fn check_content(state: &AppState, tenant_id: &TenantId, c: &TemplateContent) -> Result<()> {
    check_limits(state, &c.subject, &c.html, c.text.as_deref())?;
    if c.subject.trim().is_empty() {
        return Err(Error::validation("`subject` must not be empty"));
    }
    if c.html.trim().is_empty() {
        return Err(Error::validation("`html` must not be empty"));
    }
    let variables = c.sample_variables.clone().unwrap_or_else(|| "{}".into());
    let tenant = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    let link = "https://example.com/u/preview";
    let mut samples = vec![Recipient {
        email: "preview@example.com".into(),
        first_name: None,
        last_name: None,
        attributes: "{}".into(),
        variables: variables.clone(),
        unsubscribe_url: Some(link.into()),
        preferences_url: Some("https://example.com/p/preview".into()),
        confirm_url: None,
        tenant_name: tenant.name.clone(),
    }];
    let first = ContactFilter { tag: None, after: None, limit: CHECKED_CONTACTS };
    samples.extend(state.store.contacts(tenant_id, &first).await?.into_iter().map(|contact| Recipient {
        email: contact.email,
        first_name: contact.first_name,
        last_name: contact.last_name,
        attributes: contact.attributes,
        variables: variables.clone(),
        unsubscribe_url: Some(link.into()),
        preferences_url: Some("https://example.com/p/preview".into()),
        confirm_url: None,
        tenant_name: tenant.name.clone(),
    }));
    let checked = state.renderer.check(tenant_id.as_str(), &c.subject, &c.html, c.text.as_deref(), samples).await;
    checked.map_err(unavailable)?.map_err(invalid_template)
}

/// A template's `sample_variables`: a JSON object of bounded size, as text;
/// `null` is none.
fn sample_variables(raw: Option<Value>) -> Result<Option<String>> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let v = variables(Some(v)).map_err(|e| Error::validation(format!("`sample_variables`: {e}")))?;
            Ok(Some(v.to_string()))
        }
    }
}

/// Sizes, a one-line subject, and no NUL anywhere (PostgreSQL cannot store one).
fn check_limits(state: &AppState, subject: &str, html: &str, text: Option<&str>) -> Result<()> {
    let max = state.config.max_html_bytes;
    for (field, len) in [("html", html.len()), ("text", text.map_or(0, str::len))] {
        if len > max {
            return Err(Error::TooLarge(format!(
                "`{field}` is {len} bytes; at most {max} are accepted (MAILROOM_MAX_HTML_BYTES)"
            )));
        }
    }
    if subject.chars().count() > SUBJECT_MAX {
        return Err(Error::validation(format!("`subject` is longer than {SUBJECT_MAX} characters")));
    }
    crate::domain::check_single_line(subject, "subject").map_err(Error::validation)?;
    for (field, value) in [("html", html), ("text", text.unwrap_or_default())] {
        if value.contains('\0') {
            return Err(Error::validation(format!("`{field}` must not contain a NUL character")));
        }
    }
    Ok(())
}

pub fn invalid_template(e: crate::render::template::TemplateError) -> Error {
    Error::Invalid { code: "invalid_template", message: e.to_string() }
}

/// No render worker could be started: the server's trouble, not the template's.
fn unavailable(e: crate::render::isolation::RenderProcessError) -> Error {
    tracing::error!(error = %e, "no template renderer");
    Error::Unavailable(e.to_string())
}

fn content(name: &str, subject: &str, html: &str, text: Option<&str>) -> Result<TemplateContent> {
    Ok(TemplateContent {
        name: required_text(name, "name", NAME_MAX)?,
        subject: subject.trim().to_owned(),
        html: html.to_owned(),
        text: text.filter(|t| !t.trim().is_empty()).map(str::to_owned),
        sample_variables: None,
    })
}

pub async fn find(state: &AppState, tenant_id: &TenantId, raw: &str) -> Result<TemplateRow> {
    let id = parse_id(raw, "template")?;
    state.store.template(tenant_id, &id, None).await?.ok_or(Error::NotFound("template"))
}

/// Creates a template (version 1) after the checks a save makes, with the
/// `sample_variables` it is checked (and stored) with; the API and the dashboard both call this.
pub async fn create(
    state: &AppState,
    tenant_id: &TenantId,
    name: &str,
    subject: &str,
    html: &str,
    text: Option<&str>,
    samples: Option<Value>,
) -> Result<TemplateRow> {
    let mut c = content(name, subject, html, text)?;
    c.sample_variables = sample_variables(samples)?;
    check_content(state, tenant_id, &c).await?;
    Ok(state.store.create_template(tenant_id, &c).await?)
}

/// A change to a template: absent fields stay; `text: Some(None)` removes the
/// text part, `sample_variables: Some(None)` the sample variables.
pub struct Changes {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<Option<String>>,
    pub sample_variables: Option<Option<Value>>,
}

/// Saves a change as a new version, after the checks a save makes.
pub async fn update(state: &AppState, tenant_id: &TenantId, raw_id: &str, input: Changes) -> Result<TemplateRow> {
    let current = find(state, tenant_id, raw_id).await?;
    let text = input.text;
    let mut merged = content(
        input.name.as_deref().unwrap_or(&current.name),
        input.subject.as_deref().unwrap_or(&current.subject),
        input.html.as_deref().unwrap_or(&current.html),
        match &text {
            Some(t) => t.as_deref(),
            None => current.text_body.as_deref(),
        },
    )?;
    let samples_changed = input.sample_variables.is_some();
    merged.sample_variables = match input.sample_variables {
        Some(v) => sample_variables(v)?,
        None => current.sample_variables.clone(),
    };
    check_content(state, tenant_id, &merged).await?;
    let patch = TemplatePatch {
        name: input.name.map(|_| merged.name.clone()),
        subject: input.subject.map(|_| merged.subject.clone()),
        html: input.html.map(|_| merged.html.clone()),
        text: text.map(|_| merged.text.clone()),
        sample_variables: samples_changed.then(|| merged.sample_variables.clone()),
    };
    let row = state.store.update_template(tenant_id, &current.id, patch).await?;
    row.ok_or(Error::NotFound("template"))
}

/// Deletes a template and its versions.
pub async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<()> {
    let id = parse_id(raw_id, "template")?;
    match state.store.delete_template(tenant_id, &id).await? {
        true => Ok(()),
        false => Err(Error::NotFound("template")),
    }
}

/// Content to render: a stored template's, or a draft being edited.
pub struct Draft<'a> {
    pub subject: &'a str,
    pub html: &'a str,
    pub text: Option<&'a str>,
}

/// Renders content as a send would, for `contact` (else a sample contact)
/// with `variables`, without sending: the API's preview and the dashboard's.
pub async fn preview(
    state: &AppState,
    tenant_id: &TenantId,
    draft: Draft<'_>,
    contact: Option<&ContactRow>,
    variables: Option<Value>,
) -> Result<Rendered> {
    let variables = self::variables(variables)?;
    check_limits(state, draft.subject, draft.html, draft.text)?;
    let tenant = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    let link = format!("{}/u/preview", state.config.public_url);
    let to = Recipient {
        email: contact.map_or("preview@example.com", |c| c.email.as_str()).to_owned(),
        first_name: contact.and_then(|c| c.first_name.clone()),
        last_name: contact.and_then(|c| c.last_name.clone()),
        attributes: contact.map_or_else(|| "{}".to_owned(), |c| c.attributes.clone()),
        variables: variables.to_string(),
        unsubscribe_url: Some(link),
        preferences_url: Some(format!("{}/p/preview", state.config.public_url)),
        confirm_url: None,
        tenant_name: tenant.name,
    };
    let rendered = state.renderer.render_template(tenant_id.as_str(), draft.subject, draft.html, draft.text, to).await;
    rendered.map_err(unavailable)?.map_err(invalid_template)
}

/// The tenant's templates at their current versions.
pub async fn list(state: &AppState, tenant_id: &TenantId) -> Result<Vec<Template>> {
    Ok(state.store.templates(tenant_id).await?.into_iter().map(Template::from).collect())
}

/// Every version of a template, newest first.
pub async fn versions(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Vec<Template>> {
    let id = parse_id(raw_id, "template")?;
    let rows = state.store.template_versions(tenant_id, &id).await?;
    if rows.is_empty() {
        return Err(Error::NotFound("template"));
    }
    Ok(rows.into_iter().map(Template::from).collect())
}

/// Renders one of the tenant's templates for one of its contacts (or a sample one).
pub async fn preview_stored(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    contact_id: Option<&str>,
    variables: Option<Value>,
) -> Result<Rendered> {
    let template = find(state, tenant_id, raw_id).await?;
    let contact = match contact_id {
        None => None,
        Some(raw) => {
            let id = parse_id(raw, "contact")?;
            Some(state.store.contact(tenant_id, &id).await?.ok_or(Error::NotFound("contact"))?)
        }
    };
    let draft = Draft { subject: &template.subject, html: &template.html, text: template.text_body.as_deref() };
    preview(state, tenant_id, draft, contact.as_ref(), variables).await
}
