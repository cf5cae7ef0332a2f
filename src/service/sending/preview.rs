//! What a campaign's recipient gets, without sending: inline content rendered
//! as the outbox renders it, or a template through the templates' preview.

use serde_json::Value;

use super::content;
use crate::domain::TenantId;
use crate::render::Rendered;
use crate::service::{parse_id, templates, Error, Result};
use crate::state::AppState;

/// The content of a send (inline, or a template with `variables`) and who to
/// render it for: one of the tenant's contacts, else a sample contact with
/// no name (`{{first_name}}` becomes `there`).
#[derive(Default)]
pub struct PreviewInput {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub template_id: Option<String>,
    pub variables: Option<Value>,
    pub contact_id: Option<String>,
}

/// Renders a send's content for a contact (or a sample one): the API's
/// `POST /customers/{id}/send/preview` and the compose page's preview.
pub async fn preview(state: &AppState, tenant_id: &TenantId, input: PreviewInput) -> Result<Rendered> {
    if let Some(template_id) = input.template_id.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if input.subject.is_some() || input.html.is_some() || input.text.is_some() {
            return Err(Error::validation("give either `template_id` or inline `subject`/`html`/`text`, not both"));
        }
        return templates::preview_stored(state, tenant_id, template_id, input.contact_id.as_deref(), input.variables)
            .await;
    }
    let inline = (input.subject.as_deref(), input.html.as_deref(), input.text.as_deref());
    let checked = content(state, tenant_id, inline, None, input.variables).await?;
    let contact = match input.contact_id.as_deref() {
        None => None,
        Some(raw) => {
            let id = parse_id(raw, "contact")?;
            Some(state.store.contact(tenant_id, &id).await?.ok_or(Error::NotFound("contact"))?)
        }
    };
    let links = crate::render::unsubscribe::MailLinks {
        unsubscribe: format!("{}/u/preview", state.config.public_url),
        preferences: format!("{}/p/preview", state.config.public_url),
    };
    let mut rendered = crate::render::render_inline(
        &checked.subject,
        &checked.html,
        checked.text.as_deref(),
        contact.as_ref().and_then(|c| c.first_name.as_deref()),
        Some(&links),
    );
    rendered.subject = crate::domain::strip_header_unsafe(&rendered.subject).into_owned();
    Ok(rendered)
}
