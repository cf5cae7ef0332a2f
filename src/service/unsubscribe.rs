//! One-click unsubscribe (RFC 8058) by a recipient, from the signed link in
//! their email: who the link names, and unsubscribing them. A link names a
//! message; from a campaign that targets a topic, or an automation's email
//! about one, it leaves that topic only (everything is a second, explicit
//! step); from any other mail, and from mail sent before topics existed, it
//! means everything.

use super::Result;
use crate::domain::{ConsentClient, ConsentOrigin, ConsentSource, TenantId};
use crate::state::AppState;
use crate::store::UnsubscribeTarget;

/// What a one-click unsubscribe did.
pub enum Unsubscribed {
    /// The recipient left this topic (its name); other mail still comes.
    Topic(String),
    /// The recipient gets no more marketing email from the tenant.
    Everything,
}

/// The message a genuine link names and whom it unsubscribes; `None` for a
/// link that is not genuine or names nothing any more.
pub async fn target(state: &AppState, token: &str) -> Result<Option<(String, UnsubscribeTarget)>> {
    let Some(message_id) = state.renderer.links().verify(token) else { return Ok(None) };
    // An erased person's mail names nobody any more: nothing to unsubscribe
    // (and no suppression of the hash to write).
    let target = state.store.unsubscribe_target(&message_id).await?;
    Ok(target.filter(|t| !crate::domain::is_erased_address(&t.to_email)).map(|t| (message_id, t)))
}

/// Unsubscribes the recipient a genuine link names (again, harmlessly, if
/// they already are): from the campaign's topic, unless `everything` is
/// asked or there is no topic (or it is gone); `None` when the link is not
/// genuine. The change is recorded (source `one_click`, the campaign, and
/// the person's `client`).
pub async fn one_click(
    state: &AppState,
    token: &str,
    everything: bool,
    client: ConsentClient,
) -> Result<Option<(UnsubscribeTarget, Unsubscribed)>> {
    let Some((message_id, t)) = target(state, token).await? else { return Ok(None) };
    let origin = ConsentOrigin {
        campaign_id: t.campaign_id.clone(),
        client: Some(client),
        ..ConsentOrigin::new(ConsentSource::OneClick)
    };
    if let (false, Some(contact), Some(topic), Some(name)) = (everything, &t.contact_id, &t.topic_id, &t.topic_name) {
        let tenant = TenantId::from_stored(t.tenant_id.clone());
        if state.store.leave_topic(&tenant, contact, topic, &origin).await? {
            tracing::info!(tenant = %t.tenant_id, message = %message_id, topic = %topic, "recipient left a topic");
            let name = name.clone();
            return Ok(Some((t, Unsubscribed::Topic(name))));
        }
    }
    leave_everything(state, &t, &message_id, &origin).await?;
    Ok(Some((t, Unsubscribed::Everything)))
}

/// Unsubscribes the recipient of a message from everything the tenant sends
/// (one-click's second step, the preference centre's "unsubscribe from all").
pub async fn leave_everything(
    state: &AppState,
    t: &UnsubscribeTarget,
    message_id: &str,
    origin: &ConsentOrigin,
) -> Result<()> {
    state.store.unsubscribe(t, message_id, origin).await?;
    tracing::info!(tenant = %t.tenant_id, message = %message_id, "recipient unsubscribed");
    Ok(())
}
