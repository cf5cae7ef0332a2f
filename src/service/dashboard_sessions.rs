//! Sessions of the dashboard: opened by signing in with a key, closed by
//! signing out. The database keeps only the hash of a session's token.

use super::Result;
use crate::domain::TenantId;
use crate::domain::{generate_key, hash_key};
use crate::state::AppState;

/// A session just opened: its token (for the cookie, never stored) and its CSRF token.
pub struct OpenedSession {
    pub token: String,
    pub csrf: String,
}

/// Opens a session for the holder of the key hashed as `key_hash` (the
/// operator's when `tenant` is `None`), until `expires_at` (epoch ms).
pub async fn open(
    state: &AppState,
    key_hash: &str,
    tenant: Option<&TenantId>,
    expires_at: i64,
) -> Result<OpenedSession> {
    let token = generate_key("");
    let csrf = generate_key("");
    state.store.create_ui_session(&hash_key(&token), key_hash, tenant, &csrf, expires_at).await?;
    Ok(OpenedSession { token, csrf })
}

/// Closes the session whose token hashes to `session_hash`.
pub async fn close(state: &AppState, session_hash: &str) -> Result<()> {
    Ok(state.store.delete_ui_session(session_hash).await?)
}
