//! Signup forms (issue 23, section 2): a tenant's forms, each with the
//! topics it subscribes to, the tags it adds, its confirmation template, its
//! redirects (only to the tenant's own hosts: no open redirect), the origins
//! that may post JSON to it, double opt-in on or off, and its consent
//! statement (versioned: a new text is a new version).

use serde::Serialize;
use utoipa::ToSchema;

use super::{parse_id, required_text, Error, Result};
use crate::domain::signup::{origin, redirect_host, redirect_url, MAX_HOSTS};
use crate::domain::starters::{CONFIRM_SUBSCRIPTION, STARTERS};
use crate::domain::{rfc3339, Tag, TenantId};
use crate::state::AppState;
use crate::store::{stored_list, FormFields, FormRow, TemplateContent};

const NAME_MAX: usize = 100;
const CONSENT_TEXT_MAX: usize = 2_000;
const TOPICS_MAX: usize = 100;
const TAGS_MAX: usize = 100;
const ORIGINS_MAX: usize = 20;

#[derive(Serialize, ToSchema)]
pub struct Form {
    pub id: String,
    pub customer_id: String,
    pub name: String,
    /// The topics a signup subscribes to (on confirmation, with double opt-in).
    pub topic_ids: Vec<String>,
    /// The tags a signup adds.
    pub tags: Vec<String>,
    /// The confirmation email's template (double opt-in); it sees `confirm_url`.
    pub template_id: Option<String>,
    /// Where a plain form post goes after the signup (303); `null`: a built-in page.
    pub thank_you_url: Option<String>,
    /// Where the confirmation page goes once confirmed (303); `null`: a built-in page.
    pub confirmed_url: Option<String>,
    /// The hosts the two redirects may name: the customer's domain or its subdomains.
    pub redirect_hosts: Vec<String>,
    /// Origins allowed to post JSON to the form from a browser (CORS).
    pub allowed_origins: Vec<String>,
    pub double_opt_in: bool,
    /// The consent statement shown with the form, kept with each signup's record.
    pub consent_text: String,
    /// Goes up by one each time `consent_text` changes.
    pub consent_text_version: i64,
    /// Where the form posts: `PUBLIC_URL/f/{id}`.
    pub action_url: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Form {
    pub fn from_row(f: FormRow, public_url: &str) -> Self {
        Self {
            action_url: format!("{}/f/{}", public_url.trim_end_matches('/'), f.id),
            topic_ids: stored_list(&f.topic_ids),
            tags: stored_list(&f.tags),
            redirect_hosts: stored_list(&f.redirect_hosts),
            allowed_origins: stored_list(&f.allowed_origins),
            double_opt_in: f.double_opt_in != 0,
            id: f.id,
            customer_id: f.tenant_id,
            name: f.name,
            template_id: f.template_id,
            thank_you_url: f.thank_you_url,
            confirmed_url: f.confirmed_url,
            consent_text: f.consent_text,
            consent_text_version: f.consent_text_version,
            created_at: rfc3339(f.created_at),
            updated_at: rfc3339(f.updated_at),
        }
    }
}

/// A form as asked for: absent fields get their defaults (create) or stay
/// as they are (change); `Some(None)` clears an optional one.
#[derive(Default)]
pub struct FormInput {
    pub name: Option<String>,
    pub topic_ids: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub template_id: Option<Option<String>>,
    pub thank_you_url: Option<Option<String>>,
    pub confirmed_url: Option<Option<String>>,
    pub redirect_hosts: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub double_opt_in: Option<bool>,
    pub consent_text: Option<String>,
}

fn consent_text(raw: &str) -> Result<String> {
    let v = raw.trim();
    if v.chars().count() > CONSENT_TEXT_MAX {
        return Err(Error::validation(format!("`consent_text` is longer than {CONSENT_TEXT_MAX} characters")));
    }
    if v.chars().any(|c| (c.is_control() && c != '\n') || c == '\u{2028}' || c == '\u{2029}') {
        return Err(Error::validation("`consent_text` must not contain control characters (line breaks are fine)"));
    }
    Ok(v.to_owned())
}

/// The tenant's "Confirm your subscription" template: the starter, or a new
/// copy of it for a tenant that has none (one created before it existed, or
/// that deleted or renamed it).
pub async fn confirmation_template(state: &AppState, tenant_id: &TenantId) -> Result<String> {
    let all = state.store.templates(tenant_id).await?;
    if let Some(t) = all.iter().find(|t| t.name == CONFIRM_SUBSCRIPTION) {
        return Ok(t.id.clone());
    }
    let starter = STARTERS
        .iter()
        .find(|s| s.name == CONFIRM_SUBSCRIPTION)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the confirmation starter is missing")))?;
    let content = TemplateContent {
        name: starter.name.to_owned(),
        subject: starter.subject.to_owned(),
        html: starter.html.to_owned(),
        text: None,
        sample_variables: None,
    };
    Ok(state.store.create_template(tenant_id, &content).await?.id)
}

/// Checks every field of a form, `current` (a change) filling the absent ones.
async fn fields(
    state: &AppState,
    tenant_id: &TenantId,
    input: FormInput,
    current: Option<&FormRow>,
) -> Result<FormFields> {
    let name = match (&input.name, current) {
        (Some(n), _) => required_text(n, "name", NAME_MAX)?,
        (None, Some(c)) => c.name.clone(),
        (None, None) => return Err(Error::validation("`name` is required")),
    };
    let topic_ids = match input.topic_ids {
        Some(raw) => {
            if raw.len() > TOPICS_MAX {
                return Err(Error::validation(format!("`topic_ids` holds at most {TOPICS_MAX} topics")));
            }
            let mut ids = Vec::with_capacity(raw.len());
            for (i, r) in raw.iter().enumerate() {
                let id = crate::domain::parse_id(r.trim())
                    .ok_or_else(|| Error::validation(format!("`topic_ids[{i}]` is not a topic id")))?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            if state.store.existing_topics(tenant_id, &ids).await?.len() != ids.len() {
                return Err(Error::NotFound("topic"));
            }
            ids
        }
        None => current.map(|c| stored_list(&c.topic_ids)).unwrap_or_default(),
    };
    let tags = match input.tags {
        Some(raw) => {
            if raw.len() > TAGS_MAX {
                return Err(Error::validation(format!("`tags` holds at most {TAGS_MAX} tags")));
            }
            let mut tags = raw
                .iter()
                .map(|t| Tag::parse(t).map(|t| t.as_str().to_owned()).map_err(Error::validation))
                .collect::<Result<Vec<_>>>()?;
            tags.sort();
            tags.dedup();
            tags
        }
        None => current.map(|c| stored_list(&c.tags)).unwrap_or_default(),
    };
    let template_id = match input.template_id {
        Some(Some(raw)) => {
            let id = parse_id(raw.trim(), "template")?;
            state.store.template(tenant_id, &id, None).await?.ok_or(Error::NotFound("template"))?;
            Some(id)
        }
        Some(None) => Some(confirmation_template(state, tenant_id).await?),
        None => match current {
            Some(c) => c.template_id.clone(),
            None => Some(confirmation_template(state, tenant_id).await?),
        },
    };
    // Only a domain the customer has verified is its own to redirect to.
    let tenant = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    let domain = tenant.domain_name.clone().filter(|_| tenant.domain_verified());
    let redirect_hosts = match input.redirect_hosts {
        Some(raw) => {
            if raw.len() > MAX_HOSTS {
                return Err(Error::validation(format!("`redirect_hosts` holds at most {MAX_HOSTS} hosts")));
            }
            let mut hosts = Vec::with_capacity(raw.len());
            for r in &raw {
                let h = redirect_host(r, domain.as_deref())
                    .map_err(|m| Error::Invalid { code: "open_redirect", message: m })?;
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
            hosts
        }
        None => match current {
            Some(c) => stored_list(&c.redirect_hosts),
            None => domain.iter().map(|d| d.to_ascii_lowercase()).collect(),
        },
    };
    let url = |given: Option<Option<String>>, kept: Option<String>, field: &str| -> Result<Option<String>> {
        let raw = match given {
            Some(v) => v.filter(|s| !s.trim().is_empty()),
            None => kept,
        };
        raw.map(|r| {
            redirect_url(&r, &redirect_hosts)
                .map_err(|m| Error::Invalid { code: "open_redirect", message: format!("`{field}`: {m}") })
        })
        .transpose()
    };
    let thank_you_url = url(input.thank_you_url, current.and_then(|c| c.thank_you_url.clone()), "thank_you_url")?;
    let confirmed_url = url(input.confirmed_url, current.and_then(|c| c.confirmed_url.clone()), "confirmed_url")?;
    let allowed_origins = match input.allowed_origins {
        Some(raw) => {
            if raw.len() > ORIGINS_MAX {
                return Err(Error::validation(format!("`allowed_origins` holds at most {ORIGINS_MAX} origins")));
            }
            let mut all = Vec::with_capacity(raw.len());
            for r in &raw {
                let o = origin(r).map_err(|m| Error::validation(format!("`allowed_origins`: {m}")))?;
                if !all.contains(&o) {
                    all.push(o);
                }
            }
            all
        }
        None => current.map(|c| stored_list(&c.allowed_origins)).unwrap_or_default(),
    };
    let consent_text = match (&input.consent_text, current) {
        (Some(t), _) => consent_text(t)?,
        (None, Some(c)) => c.consent_text.clone(),
        (None, None) => String::new(),
    };
    let double_opt_in = input.double_opt_in.unwrap_or_else(|| current.map_or(true, |c| c.double_opt_in != 0));
    Ok(FormFields {
        name,
        topic_ids,
        tags,
        template_id,
        thank_you_url,
        confirmed_url,
        redirect_hosts,
        allowed_origins,
        double_opt_in,
        consent_text,
    })
}

pub async fn create(state: &AppState, tenant_id: &TenantId, input: FormInput) -> Result<Form> {
    let f = fields(state, tenant_id, input, None).await?;
    let row = state.store.create_form(tenant_id, &crate::domain::new_id(), &f).await?;
    Ok(Form::from_row(row, &state.config.public_url))
}

/// A page of the tenant's forms in creation order, after the id `after`;
/// one more than `limit` when a next page exists.
pub async fn list_forms(state: &AppState, tenant_id: &TenantId, after: Option<&str>, limit: i64) -> Result<Vec<Form>> {
    let rows = state.store.forms(tenant_id, after.unwrap_or(""), limit).await?;
    Ok(rows.into_iter().map(|r| Form::from_row(r, &state.config.public_url)).collect())
}

async fn own_form(state: &AppState, tenant_id: &TenantId, raw: &str) -> Result<FormRow> {
    let id = parse_id(raw, "form")?;
    state.store.form(tenant_id, &id).await?.ok_or(Error::NotFound("form"))
}

pub async fn get(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Form> {
    Ok(Form::from_row(own_form(state, tenant_id, raw_id).await?, &state.config.public_url))
}

/// Changes a form; a new consent text is a new version of the statement.
pub async fn update(state: &AppState, tenant_id: &TenantId, raw_id: &str, input: FormInput) -> Result<Form> {
    let current = own_form(state, tenant_id, raw_id).await?;
    let f = fields(state, tenant_id, input, Some(&current)).await?;
    let row = state.store.update_form(tenant_id, &current.id, &f).await?.ok_or(Error::NotFound("form"))?;
    Ok(Form::from_row(row, &state.config.public_url))
}

/// Deletes a form: its public endpoint answers 404 from then on; its
/// pending signups can still be confirmed (without its topics and tags).
pub async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<()> {
    let id = parse_id(raw_id, "form")?;
    if !state.store.delete_form(tenant_id, &id).await? {
        return Err(Error::NotFound("form"));
    }
    Ok(())
}
