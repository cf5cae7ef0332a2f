//! A tenant's campaigns and their messages: history, status and counts, and
//! pausing, resuming and cancelling one.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{parse_id, Error, Result};
use crate::domain::{rfc3339, CampaignStatus, MessageStatus, TenantId};
use crate::state::AppState;
use crate::store::{CampaignRow, MessageRow, NewContent, Resumed, StatusCount};

#[derive(Serialize, ToSchema)]
pub struct Campaign {
    id: String,
    customer_id: String,
    subject: String,
    from: String,
    reply_to: Option<String>,
    /// `{}` (everyone), `{"tag": ...}` or `{"segment_id": ...}`.
    #[schema(value_type = Object)]
    targeting: serde_json::Value,
    /// The topic it targets: only contacts subscribed to it get its mail.
    topic_id: Option<String>,
    /// Recipients queued when the campaign was created.
    sent_to: i64,
    /// `scheduled`, `queued`, `sending`, `paused`, `sent`, `partially_failed`, `failed` (every message died) or `cancelled`.
    status: String,
    /// Why it is paused (`null` unless `status` is `paused`): `manual`, or
    /// `render_failing` when mailroom paused it because its template kept
    /// failing to render; fix the template and resume, naming the new version.
    pause_reason: Option<String>,
    /// Messages per status: queued, sending, sent, delivered, opened, clicked,
    /// bounced, complained, failed, dead, suppressed, paused, cancelled.
    counts: BTreeMap<String, i64>,
    /// Recipients who unsubscribed through this campaign's mail (its one-click
    /// link or preference centre), from everything or from its topic; each once.
    unsubscribed: i64,
    /// The template this campaign was sent from, and the version it keeps rendering.
    template_id: Option<String>,
    template_version: Option<i64>,
    scheduled_at: Option<String>,
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    email_id: String,
    customer_id: String,
    campaign_id: Option<String>,
    to: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    provider_id: Option<String>,
    created_at: String,
    updated_at: String,
    /// The one-click unsubscribe link this email carries in its
    /// `List-Unsubscribe` header (campaign mail, and transactional mail sent
    /// with `"unsubscribe": true`).
    unsubscribe_url: Option<String>,
    /// The preference centre this email links to (`/p/{token}`: the same token).
    preferences_url: Option<String>,
    /// A test send's email (`POST /customers/{id}/send/test`): counted in no figure.
    test: bool,
    events: Vec<MessageEvent>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    received_at: String,
}

/// A campaign's status follows from its messages (and a pause or cancel set by
/// hand): nothing is stored that could disagree.
fn campaign_status(c: &CampaignRow, counts: &BTreeMap<String, i64>, now: i64) -> CampaignStatus {
    let n = |s: MessageStatus| counts.get(s.as_str()).copied().unwrap_or(0);
    let total: i64 = counts.values().sum();
    let unsent = n(MessageStatus::Queued) + n(MessageStatus::Sending) + n(MessageStatus::Paused);
    let dead = n(MessageStatus::Dead);
    match c.state.as_deref() {
        Some("cancelled") => return CampaignStatus::Cancelled,
        Some("paused") if unsent > 0 => return CampaignStatus::Paused,
        _ => {}
    }
    if total > 0 && n(MessageStatus::Queued) == total {
        if c.scheduled_at.is_some_and(|t| t > now) {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Queued
        }
    } else if unsent > 0 {
        CampaignStatus::Sending
    } else if dead > 0 && dead == total {
        CampaignStatus::Failed
    } else if dead > 0 {
        CampaignStatus::PartiallyFailed
    } else {
        CampaignStatus::Sent
    }
}

fn to_campaign(c: CampaignRow, counts: &[StatusCount], unsubscribes: &[(String, i64)], now: i64) -> Campaign {
    let mut by_status: BTreeMap<String, i64> = MessageStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    for sc in counts.iter().filter(|sc| sc.campaign_id.as_deref() == Some(c.id.as_str())) {
        *by_status.entry(sc.status.clone()).or_default() += sc.n;
    }
    let status = campaign_status(&c, &by_status, now);
    Campaign {
        pause_reason: (status == CampaignStatus::Paused)
            .then(|| c.pause_reason.clone().unwrap_or_else(|| "manual".to_owned())),
        status: status.as_str().to_owned(),
        scheduled_at: c.scheduled_at.map(rfc3339),
        counts: by_status,
        unsubscribed: unsubscribes.iter().find(|(id, _)| *id == c.id).map_or(0, |(_, n)| *n),
        template_id: c.template_id,
        template_version: c.template_version,
        targeting: serde_json::from_str(&c.targeting).unwrap_or_default(),
        topic_id: c.topic_id,
        id: c.id,
        customer_id: c.tenant_id,
        subject: c.subject,
        from: c.from_address,
        reply_to: c.reply_to,
        sent_to: c.recipient_count,
        created_at: rfc3339(c.created_at),
    }
}

/// A customer's campaigns, newest first (the API and the dashboard).
pub async fn list(state: &AppState, tenant_id: &TenantId) -> Result<Vec<Campaign>> {
    let rows = state.store.campaigns(tenant_id).await?;
    let counts = state.store.campaign_status_counts(tenant_id, None).await?;
    let unsubscribes = state.store.campaign_unsubscribes(tenant_id, None).await?;
    let now = state.store.now_ms();
    Ok(rows.into_iter().map(|c| to_campaign(c, &counts, &unsubscribes, now)).collect())
}

/// One campaign with its status and per-status message counts (`id` already parsed).
pub async fn campaign_view(state: &AppState, tenant_id: &TenantId, id: &str) -> Result<Campaign> {
    let row = state.store.campaign(tenant_id, id).await?.ok_or(Error::NotFound("campaign"))?;
    let counts = state.store.campaign_status_counts(tenant_id, Some(id)).await?;
    let unsubscribes = state.store.campaign_unsubscribes(tenant_id, Some(id)).await?;
    Ok(to_campaign(row, &counts, &unsubscribes, state.store.now_ms()))
}

/// Pauses a campaign (the API and the dashboard).
pub async fn pause(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Campaign> {
    let id = parse_id(raw_id, "campaign")?;
    let current = state.store.campaign(tenant_id, &id).await?.ok_or(Error::NotFound("campaign"))?;
    if current.state.as_deref() == Some("cancelled") {
        return Err(Error::conflict("campaign_cancelled", "a cancelled campaign cannot be paused"));
    }
    state.store.pause_campaign(tenant_id, &id).await?;
    tracing::info!(tenant = %tenant_id, campaign = %id, "campaign paused");
    campaign_view(state, tenant_id, &id).await
}

/// Resumes a paused campaign (the API and the dashboard).
pub async fn resume(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Campaign> {
    resume_with(state, tenant_id, raw_id, None).await
}

/// Resumes a paused campaign, optionally switching it to `template_version`
/// of its template (say, one that fixes what made it `render_failing`): the
/// version applies to messages not yet claimed; batches already recorded
/// retry with the content they were claimed with.
pub async fn resume_with(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    template_version: Option<i64>,
) -> Result<Campaign> {
    let id = parse_id(raw_id, "campaign")?;
    let current = state.store.campaign(tenant_id, &id).await?.ok_or(Error::NotFound("campaign"))?;
    if current.state.as_deref() != Some("paused") {
        return Err(Error::conflict("campaign_not_paused", "only a paused campaign can be resumed"));
    }
    let content = match template_version {
        None => None,
        Some(version) if version < 1 => {
            return Err(Error::validation("`template_version` must be 1 or more"));
        }
        Some(version) => {
            let Some(template_id) = current.template_id.as_deref() else {
                return Err(Error::validation("`template_version`: this campaign was not sent from a template"));
            };
            let t = state
                .store
                .template(tenant_id, template_id, Some(version))
                .await?
                .ok_or(Error::NotFound("template version"))?;
            Some(NewContent { version: t.version, subject: t.subject, html: t.html, text: t.text_body })
        }
    };
    if let Resumed::TextPartInFlight { in_flight } =
        state.store.resume_campaign(tenant_id, &id, content.as_ref()).await?
    {
        return Err(Error::conflict(
            "batches_in_flight",
            format!(
                "{in_flight} messages are in batches waiting for the provider with a text part derived from the \
                 html; a version with a text part of its own would change their retries. Resume without \
                 `template_version`, or once they are settled"
            ),
        ));
    }
    state.wake.notify_waiters();
    tracing::info!(tenant = %tenant_id, campaign = %id, "campaign resumed");
    campaign_view(state, tenant_id, &id).await
}

/// Cancels a campaign (the API and the dashboard).
pub async fn cancel(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Campaign> {
    let id = parse_id(raw_id, "campaign")?;
    state.store.campaign(tenant_id, &id).await?.ok_or(Error::NotFound("campaign"))?;
    state.store.cancel_campaign(tenant_id, &id).await?;
    tracing::info!(tenant = %tenant_id, campaign = %id, "campaign cancelled");
    campaign_view(state, tenant_id, &id).await
}

/// One message with its events (the API and the dashboard).
pub async fn message_view(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Message> {
    let id = parse_id(raw_id, "message")?;
    let m = state.store.message(tenant_id, &id).await?.ok_or(Error::NotFound("message"))?;
    let events = state.store.message_events(&m.id).await?;
    let links = (m.campaign_id.is_some() || m.list_unsubscribe == Some(1))
        .then(|| state.renderer.links().urls(&m.id))
        .flatten();
    Ok(Message {
        unsubscribe_url: links.as_ref().map(|l| l.unsubscribe.clone()),
        preferences_url: links.map(|l| l.preferences),
        test: m.test == 1,
        email_id: m.id,
        customer_id: m.tenant_id,
        campaign_id: m.campaign_id,
        to: m.to_email,
        status: m.status,
        attempts: m.attempts,
        last_error: m.last_error,
        provider_id: m.provider_id,
        created_at: rfc3339(m.created_at),
        updated_at: rfc3339(m.updated_at),
        events: events
            .into_iter()
            .map(|e| MessageEvent { id: e.svix_id, event_type: e.event_type, received_at: rfc3339(e.received_at) })
            .collect(),
    })
}

/// Deletes a campaign record; its unsent messages are dropped.
pub async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<()> {
    let id = parse_id(raw_id, "campaign")?;
    if !state.store.delete_campaign(tenant_id, &id).await? {
        return Err(Error::NotFound("campaign"));
    }
    Ok(())
}

/// A page of a campaign's messages, one per recipient, in contact order after
/// the contact id `after`: the campaign's id, the page size, and one row more
/// than that when there is a next page (each with its contact id).
pub async fn messages(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    limit: Option<&str>,
    after: Option<&str>,
) -> Result<(String, i64, Vec<(String, MessageRow)>)> {
    let id = parse_id(raw_id, "campaign")?;
    state.store.campaign(tenant_id, &id).await?.ok_or(Error::NotFound("campaign"))?;
    let limit = super::page_limit(limit)?;
    let after = match after.filter(|a| !a.is_empty()) {
        None => String::new(),
        Some(raw) => crate::domain::parse_id(raw).ok_or_else(|| Error::validation("`after` must be a contact id"))?,
    };
    let rows = state.store.campaign_messages(tenant_id, &id, &after, limit).await?;
    Ok((id, limit, rows))
}
