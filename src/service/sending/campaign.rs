//! Campaigns: who a send reaches, the checks before it, and queueing it.

use serde_json::Value;

use super::{content, from_header, reply_to};
use crate::domain::{new_id, Tag, TenantId};
use crate::outbox::compose::verified_domain;
use crate::service::{parse_id, Error, Result};
use crate::state::AppState;
use crate::store::{EnqueueOutcome, KeyRepeat, NewCampaign, RequestKey, Targeting};

/// Furthest ahead a campaign may be scheduled (a year and a day).
const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3_600_000;

/// Who a send reaches: an earlier campaign's unsent part, else a segment, else a
/// filter, else a tag, else every subscribed contact. Unknown campaigns and
/// segments are 404; a filter beside other targeting is refused.
pub async fn resolve_targeting(
    state: &AppState,
    tenant_id: &TenantId,
    resume: Option<&str>,
    segment_id: Option<&str>,
    tag: Option<&str>,
    filter: Option<&Value>,
) -> Result<Targeting> {
    let present = |v: Option<&str>| v.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(filter) = filter.filter(|f| !f.is_null()) {
        if present(resume).is_some() || present(segment_id).is_some() || present(tag).is_some() {
            return Err(Error::validation(
                "`filter` cannot be combined with `tag`, `segment_id` or `resume_from_campaign_id`",
            ));
        }
        return Ok(Targeting::Filter { filter: crate::service::segments::parse_filter(filter)?, segment_id: None });
    }
    if let Some(old) = present(resume) {
        let old = parse_id(&old, "campaign")?;
        state.store.campaign(tenant_id, &old).await?.ok_or(Error::NotFound("campaign"))?;
        return Ok(Targeting::Resume(old));
    }
    if let Some(sid) = present(segment_id) {
        let sid = parse_id(&sid, "segment")?;
        let seg = state.store.segment(tenant_id, &sid).await?.ok_or(Error::NotFound("segment"))?;
        if let Some(filter) = crate::service::segments::stored_filter(&seg)? {
            return Ok(Targeting::Filter { filter, segment_id: Some(sid) });
        }
        return Ok(Targeting::Segment(sid));
    }
    match present(tag) {
        Some(tag) => Ok(Targeting::Tag(Tag::parse(&tag).map_err(Error::validation)?.into_string())),
        None => Ok(Targeting::All),
    }
}

/// Subscribed, unsuppressed contacts a send with this targeting (and topic,
/// an id from [`crate::service::topics::resolve`]) would reach now.
pub async fn audience_count(
    state: &AppState,
    tenant_id: &TenantId,
    targeting: &Targeting,
    topic_id: Option<&str>,
) -> Result<i64> {
    Ok(state.store.audience_count_in(tenant_id, targeting, topic_id).await?)
}

/// The topic a send targets: the one named (the tenant's own, else 404), and
/// for a resume the earlier campaign's, which it keeps (naming another is a 422).
pub async fn resolve_topic(
    state: &AppState,
    tenant_id: &TenantId,
    raw: Option<&str>,
    targeting: &Targeting,
) -> Result<Option<String>> {
    let named = crate::service::topics::resolve(state, tenant_id, raw).await?;
    let Targeting::Resume(old) = targeting else { return Ok(named) };
    let kept = state.store.campaign(tenant_id, old).await?.ok_or(Error::NotFound("campaign"))?.topic_id;
    match (named, kept) {
        (Some(named), Some(kept)) if named != kept => {
            Err(Error::validation("`topic_id`: a resume keeps the topic of the campaign it resumes"))
        }
        (named, kept) => Ok(kept.or(named)),
    }
}

/// Parses an RFC 3339 time into epoch milliseconds.
fn parse_time(raw: &str) -> Result<i64> {
    crate::domain::parse_rfc3339(raw).map_err(|e| match e {
        crate::domain::TimeError::NotRfc3339 => {
            Error::validation("`scheduled_at` must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z")
        }
        crate::domain::TimeError::OutOfRange => Error::validation("`scheduled_at` is out of range"),
    })
}

/// A campaign send as asked for (the API's body, the dashboard's form).
#[derive(Default)]
pub struct CampaignInput {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub template_id: Option<String>,
    pub variables: Option<Value>,
    pub tag: Option<String>,
    pub segment_id: Option<String>,
    pub filter: Option<Value>,
    pub reply_to: Option<String>,
    pub from: Option<String>,
    pub scheduled_at: Option<String>,
    pub resume_from_campaign_id: Option<String>,
    /// Only contacts subscribed to this topic (with any other targeting: both).
    pub topic_id: Option<String>,
}

/// A campaign checked and ready to queue.
pub struct PreparedCampaign {
    pub campaign: NewCampaign,
    pub from: String,
    pub warnings: Vec<String>,
    /// `queued` or `scheduled`.
    pub status: &'static str,
}

/// Checks a send request: verified domain, sender, content, schedule, audience.
pub async fn prepare_campaign(
    state: &AppState,
    tenant_id: &TenantId,
    input: CampaignInput,
) -> Result<PreparedCampaign> {
    let domain = verified_domain(&state.store, tenant_id).await?;
    let from = from_header(state, tenant_id, input.from.as_deref(), &domain).await?;
    let content = content(
        state,
        tenant_id,
        (input.subject.as_deref(), input.html.as_deref(), input.text.as_deref()),
        input.template_id.as_deref(),
        input.variables,
    )
    .await?;
    let now = state.store.now_ms();
    let scheduled_at = input.scheduled_at.as_deref().map(parse_time).transpose()?;
    if scheduled_at.is_some_and(|t| t > now.saturating_add(MAX_SCHEDULE_AHEAD_MS)) {
        return Err(Error::validation("`scheduled_at` is more than a year ahead"));
    }
    let scheduled_at = scheduled_at.filter(|t| *t > now);
    let targeting = resolve_targeting(
        state,
        tenant_id,
        input.resume_from_campaign_id.as_deref(),
        input.segment_id.as_deref(),
        input.tag.as_deref(),
        input.filter.as_ref(),
    )
    .await?;
    let topic_id = resolve_topic(state, tenant_id, input.topic_id.as_deref(), &targeting).await?;
    let campaign = NewCampaign {
        id: new_id(),
        subject: content.subject,
        html: content.html,
        text: content.text,
        template: content.template,
        variables: content.variables,
        from_address: from.clone(),
        reply_to: reply_to(input.reply_to.as_deref())?,
        targeting,
        topic_id,
        scheduled_at,
    };
    let status = if scheduled_at.is_some() { "scheduled" } else { "queued" };
    Ok(PreparedCampaign { campaign, from, warnings: domain.warnings, status })
}

fn no_recipients(topic: bool) -> Error {
    let message = match topic {
        true => "no subscribed contacts match the targeting and are subscribed to the topic",
        false => "no subscribed contacts match the targeting",
    };
    Error::precondition("no_recipients", message)
}

/// Queues a prepared campaign. With a request key, a repeat of the key is
/// answered from what `respond` (given the recipients queued) said the first time.
pub async fn queue_campaign(
    state: &AppState,
    tenant_id: &TenantId,
    p: &PreparedCampaign,
    key: Option<RequestKey<'_>>,
    respond: impl FnOnce(u64) -> String,
) -> Result<std::result::Result<(u64, String), KeyRepeat>> {
    match state.store.enqueue_campaign(tenant_id, &p.campaign, key, respond).await? {
        EnqueueOutcome::NoRecipients => Err(no_recipients(p.campaign.topic_id.is_some())),
        EnqueueOutcome::Repeat(repeat) => Ok(Err(repeat)),
        EnqueueOutcome::Enqueued { recipients, response } => {
            tracing::info!(tenant = %tenant_id, campaign = %p.campaign.id, recipients, "campaign queued");
            state.wake.notify_waiters();
            Ok(Ok((recipients, response)))
        }
    }
}

/// Queues a campaign without a request key (the dashboard, whose form carries
/// a one-time CSRF token instead); returns the recipients queued.
pub async fn queue_campaign_unkeyed(state: &AppState, tenant_id: &TenantId, p: &PreparedCampaign) -> Result<u64> {
    match queue_campaign(state, tenant_id, p, None, |_| String::new()).await? {
        Ok((recipients, _)) => Ok(recipients),
        Err(_) => Err(Error::conflict("repeat", "this campaign was already queued")),
    }
}
