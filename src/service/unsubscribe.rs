//! One-click unsubscribe (RFC 8058) by a recipient, from the signed link in
//! their email: who the link names, and unsubscribing them.

use super::Result;
use crate::state::AppState;
use crate::store::UnsubscribeTarget;

/// The message a genuine link names and whom it unsubscribes; `None` for a
/// link that is not genuine or names nothing any more.
pub async fn target(state: &AppState, token: &str) -> Result<Option<(String, UnsubscribeTarget)>> {
    let Some(message_id) = state.renderer.links().verify(token) else { return Ok(None) };
    Ok(state.store.unsubscribe_target(&message_id).await?.map(|t| (message_id, t)))
}

/// Unsubscribes the recipient a genuine link names (again, harmlessly, if
/// they already are); `None` when the link is not genuine.
pub async fn one_click(state: &AppState, token: &str) -> Result<Option<UnsubscribeTarget>> {
    let Some((message_id, t)) = target(state, token).await? else { return Ok(None) };
    state.store.unsubscribe(&t, &message_id).await?;
    tracing::info!(tenant = %t.tenant_id, message = %message_id, "recipient unsubscribed");
    Ok(Some(t))
}
