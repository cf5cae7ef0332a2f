//! Signing up (issue 23, section 2): a person posting a tenant's public form,
//! or a tenant's app adding a contact with `double_opt_in`; the confirmation
//! email (transactional, through the one single-send path); and confirming
//! from its link (`/c/{token}`: a GET shows a button, only the POST confirms).
//!
//! A form's answer is the same whether the address is new, pending or known
//! (no enumeration), and a form is rate-limited per address and per client
//! on keyed hashes, so nothing of an address is kept in clear for it.

use serde_json::json;

use super::contacts::{Contact, NewContactInput};
use super::{optional_text, Error, Result};
use crate::domain::signup::{LIMIT_WINDOW_MS, PER_ADDRESS_PER_HOUR, PER_CLIENT_PER_HOUR};
use crate::domain::{new_id, ConsentClient, ConsentOrigin, ConsentSource, EmailAddress, Tag, TenantId};
use crate::outbox::compose::{compose_confirmation, sender, verified_domain, Content, SingleMail};
use crate::state::AppState;
use crate::store::{stored_list, ContactRow, FormRow, NewContact, NewSignup, SignupTarget, StoreError};

/// What a person typed into a form.
pub struct FormPost {
    pub email: String,
    pub first_name: Option<String>,
    /// The hidden field only bots fill.
    pub honeypot: Option<String>,
}

/// The error code of a post to a double opt-in form whose customer cannot
/// send its confirmation (no verified domain).
pub const NOT_READY: &str = "form_not_ready";

/// The form a public endpoint names (404 for anything else).
pub async fn public_form(state: &AppState, raw_id: &str) -> Result<FormRow> {
    let id = super::parse_id(raw_id, "form")?;
    state.store.public_form(&id).await?.ok_or(Error::NotFound("form"))
}

/// Takes a post to a form. A well-formed post that filled the honeypot is answered as a success and
/// does nothing. Otherwise, within the rate limits, the address signs up
/// (see [`crate::store::Store::sign_up`]) and, with double opt-in, gets
/// the confirmation email. Whether the address was new, pending or known
/// changes nothing in the answer; a confirmation that cannot be sent is
/// logged, not told.
pub async fn post(state: &AppState, form: &FormRow, post: FormPost, client: ConsentClient) -> Result<()> {
    // A post that is not a signup at all is refused, a bot's too; a
    // well-formed one that filled the honeypot is answered as a success.
    let email = EmailAddress::parse(&post.email).map_err(|e| Error::Invalid { code: "invalid_email", message: e })?;
    let first_name = optional_text(post.first_name.as_deref(), "first_name", 100)?;
    if post.honeypot.as_deref().is_some_and(|h| !h.trim().is_empty()) {
        tracing::info!(form = %form.id, "a form post filled the honeypot: ignored");
        return Ok(());
    }
    let tenant_id = TenantId::from_stored(form.tenant_id.clone());
    // A confirmation that cannot be sent is a signup that can never
    // complete: refused before anything is written or counted.
    let double_opt_in = form.double_opt_in != 0;
    if double_opt_in && verified_domain(&state.store, &tenant_id).await.is_err() {
        return Err(Error::Conflict {
            code: NOT_READY,
            message: "this form does not take signups yet: its customer's sending domain is not verified".into(),
        });
    }
    let links = state.renderer.links();
    let address_key = links.keyed_hash(&format!("signup-address/{tenant_id}"), &email.normalized());
    let client_key = client.ip.as_deref().map(|ip| links.keyed_hash(&format!("signup-client/{tenant_id}"), ip));
    // Checked and counted in one step: parallel posts never get past a limit.
    let mut limits: Vec<(&str, i64)> = client_key.as_deref().map(|k| (k, PER_CLIENT_PER_HOUR)).into_iter().collect();
    limits.push((address_key.as_str(), PER_ADDRESS_PER_HOUR));
    if let Some((i, oldest)) = state.store.take_signup_attempt(&tenant_id, &limits, LIMIT_WINDOW_MS).await? {
        let what = if i + 1 == limits.len() { "address" } else { "client" };
        let now = state.store.now_ms();
        let retry_after_secs = u64::try_from((oldest + LIMIT_WINDOW_MS - now + 999) / 1000).unwrap_or(1).max(1);
        return Err(Error::RateLimited {
            message: format!("too many signups from this {what}; retry in {retry_after_secs} s"),
            retry_after_secs,
        });
    }

    let text = (!form.consent_text.is_empty()).then(|| form.consent_text.clone());
    let origin = ConsentOrigin {
        form_id: Some(form.id.clone()),
        consent_text_version: text.as_ref().map(|_| form.consent_text_version.to_string()),
        consent_text: text,
        client: Some(client),
        ..ConsentOrigin::new(ConsentSource::Form)
    };
    let tags: Vec<Tag> = stored_list(&form.tags).iter().filter_map(|t| Tag::parse(t).ok()).collect();
    let topic_ids = state.store.existing_topics(&tenant_id, &stored_list(&form.topic_ids)).await?;
    let contact = NewContact {
        id: new_id(),
        email_normalized: email.normalized(),
        email: email.to_string(),
        first_name,
        last_name: None,
        tags,
        attributes_json: "{}".into(),
        topics: Vec::new(),
    };
    let signup = NewSignup { contact, double_opt_in, topic_ids, form_id: Some(form.id.clone()) };
    let signed = match state.store.sign_up(&tenant_id, signup, &origin).await {
        Ok(s) => s,
        // The same address posted twice at once: the other post signed it up.
        Err(StoreError::Duplicate(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if let Some(signup_id) = &signed.signup_id {
        if let Err(e) =
            send_confirmation(state, &tenant_id, &signed.contact, signup_id, form.template_id.as_deref()).await
        {
            tracing::warn!(tenant = %tenant_id, form = %form.id, error = %e, "confirmation email not sent");
        }
    }
    tracing::info!(tenant = %tenant_id, form = %form.id, "form signup taken");
    Ok(())
}

/// Queues the confirmation email of a signup, at transactional priority,
/// through the one single-send path (see [`compose_confirmation`]).
async fn send_confirmation(
    state: &AppState,
    tenant_id: &TenantId,
    contact: &ContactRow,
    signup_id: &str,
    template_id: Option<&str>,
) -> Result<()> {
    let domain = verified_domain(&state.store, tenant_id).await?;
    let from = sender(None, &domain)?;
    let template_id = match template_id {
        Some(id) => id.to_owned(),
        None => super::forms::confirmation_template(state, tenant_id).await?,
    };
    let template = match state.store.template(tenant_id, &template_id, None).await? {
        Some(t) => t,
        // The form's template was deleted since: the starter stands in.
        None => {
            let id = super::forms::confirmation_template(state, tenant_id).await?;
            state.store.template(tenant_id, &id, None).await?.ok_or(Error::NotFound("template"))?
        }
    };
    let confirm_url = state
        .renderer
        .links()
        .confirm_url(signup_id)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a signup id that is not a UUID")))?;
    let email =
        EmailAddress::parse(&contact.email).map_err(|e| Error::Invalid { code: "invalid_email", message: e })?;
    let mail = SingleMail {
        to_email: email.to_string(),
        to_normalized: email.normalized(),
        first_name: contact.first_name.clone(),
        contact_id: Some(contact.id.clone()),
        from,
        content: Content::template(template, json!({ "confirm_url": confirm_url }).to_string()),
        list_unsubscribe: false,
        reply_to: None,
        tags: Vec::new(),
        automation_id: None,
        topic_id: None,
    };
    let single = compose_confirmation(&state.store, tenant_id, mail).await?;
    state.store.enqueue_single(tenant_id, &single, None, "").await?;
    tracing::info!(tenant = %tenant_id, message = %single.id, "confirmation email queued");
    state.wake.notify_waiters();
    Ok(())
}

/// The API's contact creation with `double_opt_in`: the contact is added
/// `pending` (409 if the address is known, as any creation) and gets the
/// confirmation email; it is mailed campaigns only once it confirms.
pub async fn create_pending(state: &AppState, tenant_id: &TenantId, mut body: NewContactInput) -> Result<Contact> {
    // Checked before anything is written: the email cannot go out otherwise.
    verified_domain(&state.store, tenant_id).await?;
    let topics = std::mem::take(&mut body.topics);
    let new = super::contacts::new_contact(body)?;
    let topics = super::topics::parse_choices(state, tenant_id, topics, "topics").await?;
    if state.store.contact_by_email(tenant_id, &new.email_normalized).await?.is_some() {
        return Err(duplicate(&new.email));
    }
    if state.store.blocks_confirmation(tenant_id, &new.email_normalized).await? {
        return Err(crate::outbox::compose::ComposeError::Suppressed.into());
    }
    let email = new.email.clone();
    let signup =
        NewSignup { contact: NewContact { topics, ..new }, double_opt_in: true, topic_ids: Vec::new(), form_id: None };
    let signed = state.store.sign_up(tenant_id, signup, &ConsentOrigin::api()).await.map_err(|e| match e {
        StoreError::Duplicate(_) => duplicate(&email),
        e => e.into(),
    })?;
    if !signed.created {
        return Err(duplicate(&email));
    }
    if let Some(signup_id) = &signed.signup_id {
        send_confirmation(state, tenant_id, &signed.contact, signup_id, None).await?;
    }
    Ok(signed.contact.into())
}

fn duplicate(email: &str) -> Error {
    Error::conflict("contact_exists", format!("a contact with email '{email}' already exists"))
}

/// A form's stored redirect `url`, if it still lands on the customer's own
/// verified domain (see [`crate::domain::signup::still_own`]); otherwise
/// none, and mailroom's own page answers instead.
pub async fn own_redirect(state: &AppState, tenant_id: &TenantId, url: Option<&str>) -> Result<Option<String>> {
    let Some(url) = url else { return Ok(None) };
    let tenant = state.store.tenant(tenant_id).await?;
    let domain = tenant.as_ref().and_then(|t| t.domain_name.clone().filter(|_| t.domain_verified()));
    if crate::domain::signup::still_own(url, domain.as_deref()) {
        return Ok(Some(url.to_owned()));
    }
    tracing::warn!(tenant = %tenant_id, "a form's redirect is off the customer's verified domain now: not followed");
    Ok(None)
}

/// The signup a genuine confirmation link names; `None` for a link that is
/// not genuine or whose contact is gone (expired, deleted).
pub async fn target(state: &AppState, token: &str) -> Result<Option<SignupTarget>> {
    let Some(id) = state.renderer.links().verify_confirm(token) else { return Ok(None) };
    Ok(state.store.signup_target(&id).await?)
}

/// Confirms the signup a genuine link names (a second time changes nothing);
/// `None` when the link is not genuine. Returns the signup and where to go
/// next (the form's confirmed URL, if it has one).
pub async fn confirm(
    state: &AppState,
    token: &str,
    client: ConsentClient,
) -> Result<Option<(SignupTarget, Option<String>)>> {
    let Some(t) = target(state, token).await? else { return Ok(None) };
    let tenant_id = TenantId::from_stored(t.tenant_id.clone());
    let form = match &t.form_id {
        Some(id) => state.store.form(&tenant_id, id).await?,
        None => None,
    };
    let (topic_ids, tags, redirect) = match &form {
        Some(f) => (
            state.store.existing_topics(&tenant_id, &stored_list(&f.topic_ids)).await?,
            stored_list(&f.tags).iter().filter_map(|t| Tag::parse(t).ok()).collect(),
            own_redirect(state, &tenant_id, f.confirmed_url.as_deref()).await?,
        ),
        None => (Vec::new(), Vec::new(), None),
    };
    let origin = ConsentOrigin {
        form_id: t.form_id.clone(),
        consent_text: t.consent_text.clone(),
        consent_text_version: t.consent_text_version.clone(),
        client: Some(client),
        ..ConsentOrigin::new(if t.form_id.is_some() { ConsentSource::Form } else { ConsentSource::Api })
    };
    if state.store.confirm_signup(&t, &topic_ids, &tags, &origin).await? {
        tracing::info!(tenant = %t.tenant_id, contact = %t.contact_id, "signup confirmed");
    }
    Ok(Some((t, redirect)))
}
