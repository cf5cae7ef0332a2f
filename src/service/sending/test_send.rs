//! Test sends: a campaign, as `/send` would send it, to a handful of the
//! tenant's own addresses first. Checked as the real send is (domain, sender,
//! content, targeting), then queued as one email per address through the
//! outbox like any other mail: suppression checked, rendered by the worker,
//! with one-click unsubscribe headers. The messages are marked `test`, belong
//! to no campaign, and count in no figure (see `Store::enqueue_test_send`).

use super::{prepare_campaign, CampaignInput};
use crate::domain::{EmailAddress, TenantId};
use crate::outbox::compose::{compose_single, ComposeError, Content, SingleMail};
use crate::provider::EmailTag;
use crate::service::{Error, Result};
use crate::state::AppState;

/// Most addresses one test send reaches.
pub const TEST_RECIPIENTS_MAX: usize = 5;

/// The contact tag that lets an address off the tenant's domain receive tests.
const TEST_TAG: &str = "test";

/// What a recipient's subject starts with, so a test is never mistaken for the real mail.
const TEST_SUBJECT_PREFIX: &str = "[Test] ";

/// A test send queued.
pub struct QueuedTest {
    /// One message per address, in the order given: `GET /customers/{id}/messages/{email_id}`.
    pub email_ids: Vec<String>,
    pub to: Vec<String>,
    pub from: String,
}

/// Sends `input` (the `/send` body; its audience is checked but not mailed)
/// to `to`: 1 to [`TEST_RECIPIENTS_MAX`] distinct addresses, each on the
/// tenant's verified domain or a subscribed contact tagged `test`. All or
/// nothing: one address refused queues none.
pub async fn send_test(
    state: &AppState,
    tenant_id: &TenantId,
    to: &[String],
    input: CampaignInput,
) -> Result<QueuedTest> {
    if to.is_empty() || to.len() > TEST_RECIPIENTS_MAX {
        return Err(Error::validation(format!(
            "`to`: give 1 to {TEST_RECIPIENTS_MAX} addresses for a test send ({} given)",
            to.len()
        )));
    }
    let mut addresses: Vec<EmailAddress> = Vec::with_capacity(to.len());
    for (i, raw) in to.iter().enumerate() {
        let a = EmailAddress::parse(raw)
            .map_err(|e| Error::Invalid { code: "invalid_email", message: format!("to[{i}]: {e}") })?;
        if addresses.iter().any(|b| b.normalized() == a.normalized()) {
            return Err(Error::validation(format!("to[{i}]: `{a}` is listed twice")));
        }
        addresses.push(a);
    }
    let prepared = prepare_campaign(state, tenant_id, input).await?;
    let domain = crate::outbox::compose::verified_domain(&state.store, tenant_id).await?;
    let c = &prepared.campaign;
    let mut singles = Vec::with_capacity(addresses.len());
    for a in &addresses {
        let contact = state.store.contact_by_email(tenant_id, &a.normalized()).await?;
        let tagged = contact.as_ref().is_some_and(|c| {
            serde_json::from_str::<Vec<String>>(&c.tags)
                .is_ok_and(|tags| tags.iter().any(|t| t.eq_ignore_ascii_case(TEST_TAG)))
        });
        if !tagged && !a.domain().eq_ignore_ascii_case(&domain.name) {
            return Err(Error::Invalid {
                code: "recipient_not_allowed",
                message: format!(
                    "`{a}` may not receive test sends: use an address on {} or a contact tagged `{TEST_TAG}`",
                    domain.name
                ),
            });
        }
        if let Some(contact) = contact.as_ref().filter(|c| c.status != "subscribed") {
            return Err(Error::Invalid {
                code: "recipient_unsubscribed",
                message: format!("`{a}` is {}: campaign mail, tests included, does not reach it", contact.status),
            });
        }
        let mail = SingleMail {
            to_email: a.to_string(),
            to_normalized: a.normalized(),
            first_name: contact.as_ref().and_then(|c| c.first_name.clone()),
            contact_id: contact.map(|c| c.id),
            from: prepared.from.clone(),
            content: Content {
                subject: format!("{TEST_SUBJECT_PREFIX}{}", c.subject),
                html: c.html.clone(),
                text: c.text.clone(),
                template: c.template.clone(),
                variables: c.variables.clone(),
            },
            list_unsubscribe: true,
            reply_to: c.reply_to.clone(),
            tags: vec![EmailTag::new("test", "true")],
            automation_id: None,
            topic_id: None,
        };
        let single = compose_single(&state.store, tenant_id, mail).await.map_err(|e| match e {
            ComposeError::Suppressed => Error::Invalid {
                code: "recipient_suppressed",
                message: format!("`{a}` bounced or complained earlier and is suppressed"),
            },
            e => e.into(),
        })?;
        singles.push(single);
    }
    state.store.enqueue_test_send(tenant_id, &singles).await?;
    tracing::info!(tenant = %tenant_id, recipients = singles.len(), "test send queued");
    state.wake.notify_waiters();
    Ok(QueuedTest {
        email_ids: singles.iter().map(|s| s.id.clone()).collect(),
        to: singles.into_iter().map(|s| s.to_email).collect(),
        from: prepared.from,
    })
}
