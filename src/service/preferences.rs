//! The preference centre (`/p/{token}`): a recipient, from the signed link in
//! a campaign email, sees every topic of the tenant as they stand on it and
//! changes them, or leaves everything, in one save. The link is the
//! one-click unsubscribe token itself (one HMAC per email for both links):
//! whoever holds it may already unsubscribe from everything, and the page
//! gives them nothing more than a say over the same person's topics.
//!
//! Saving goes through the same use cases as the API: topic choices through
//! [`topics::set_for_contact`], leaving everything through
//! [`unsubscribe::leave_everything`]. Only a confirmed double opt-in lifts a global
//! unsubscribe, so nothing here resubscribes a contact globally.

use super::{topics, unsubscribe, Result};
use crate::domain::{ConsentClient, ConsentOrigin, ConsentSource, TenantId, TopicChoice, TopicState};
use crate::state::AppState;
use crate::store::UnsubscribeTarget;

/// What the preference centre shows.
pub struct Preferences {
    pub tenant_name: String,
    /// The tenant's language (`en`, `de`).
    pub locale: String,
    /// Every topic of the tenant as the recipient stands on it.
    pub topics: Vec<topics::ContactTopic>,
    /// False when the recipient gets no marketing email from the tenant at
    /// all (unsubscribed, bounced, complained).
    pub receives_mail: bool,
}

/// What a recipient asked for with one save.
pub struct Choices {
    /// The topics the page showed (choices on topics made since are left alone).
    pub shown: Vec<String>,
    /// Of those, the ones ticked.
    pub ticked: Vec<String>,
    /// "Unsubscribe from all" was ticked.
    pub everything: bool,
}

async fn load(state: &AppState, t: UnsubscribeTarget) -> Result<Preferences> {
    let tenant = TenantId::from_stored(t.tenant_id.clone());
    let (topics, receives_mail) = match &t.contact_id {
        Some(contact) => {
            let topics = topics::of_contact(state, &tenant, contact).await?;
            let receives = state.store.contact(&tenant, contact).await?.is_some_and(|c| c.status == "subscribed");
            (topics, receives)
        }
        None => (Vec::new(), !state.store.is_suppressed(&tenant, &t.to_email.to_lowercase()).await?),
    };
    Ok(Preferences { tenant_name: t.tenant_name, locale: t.tenant_locale, topics, receives_mail })
}

/// The preferences a genuine link names; `None` when it is not genuine. Changes nothing.
pub async fn show(state: &AppState, token: &str) -> Result<Option<Preferences>> {
    let Some((_, t)) = unsubscribe::target(state, token).await? else { return Ok(None) };
    load(state, t).await.map(Some)
}

/// Saves a recipient's choices in one go and answers the preferences as they
/// now stand; `None` when the link is not genuine.
/// The change is recorded (source `preference_centre`, the campaign of the
/// mail whose link was followed, and the person's `client`).
pub async fn save(
    state: &AppState,
    token: &str,
    choices: Choices,
    client: ConsentClient,
) -> Result<Option<Preferences>> {
    let Some((message_id, t)) = unsubscribe::target(state, token).await? else { return Ok(None) };
    let origin = ConsentOrigin {
        campaign_id: t.campaign_id.clone(),
        client: Some(client),
        ..ConsentOrigin::new(ConsentSource::PreferenceCentre)
    };
    let tenant = TenantId::from_stored(t.tenant_id.clone());
    if let Some(contact) = &t.contact_id {
        let set: Vec<(String, TopicChoice)> = choices
            .shown
            .iter()
            .map(|id| {
                let state = if choices.ticked.contains(id) { TopicState::Subscribed } else { TopicState::Unsubscribed };
                (id.clone(), TopicChoice::Set(state))
            })
            .collect();
        if !set.is_empty() {
            topics::set_for_contact(state, &tenant, contact, set, false, &origin).await?;
        }
    }
    if choices.everything {
        unsubscribe::leave_everything(state, &t, &message_id, &origin).await?;
    }
    tracing::info!(tenant = %t.tenant_id, message = %message_id, "recipient saved preferences");
    load(state, t).await.map(Some)
}
