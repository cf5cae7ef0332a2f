//! A queued message as a worker claims it, and what renders it: the store
//! reads these and calls the renderer it is given, without knowing `render`.

use sqlx::FromRow;

/// Turns claimed messages into the provider's JSON, one answer per message in
/// order. A message's `Err` is why it cannot be rendered (it becomes a dead
/// letter); the call's `Err` leaves the whole claim for later.
pub trait RenderClaimed {
    fn render_claimed(
        &self,
        messages: &[ClaimedMessage],
    ) -> impl std::future::Future<Output = anyhow::Result<Vec<Result<String, String>>>> + Send;
}

/// A queued message as the worker renders it: campaign content already merged in.
#[derive(Clone, Debug, Default, FromRow)]
pub struct ClaimedMessage {
    pub id: String,
    pub tenant_id: String,
    pub campaign_id: Option<String>,
    pub to_email: String,
    pub first_name: Option<String>,
    pub from_address: String,
    pub subject: String,
    pub html: String,
    pub text_body: Option<String>,
    pub reply_to: Option<String>,
    pub tags: Option<String>,
    /// 1 when a campaign message's contact is no longer a subscribed, unsuppressed contact.
    pub blocked: i64,
    /// The contact's, when the message has one.
    pub last_name: Option<String>,
    /// The contact's attributes (a JSON object), when the message has a contact.
    pub attributes: Option<String>,
    pub tenant_name: String,
    /// The tenant's `locale` as stored (`en`, `de`): the footer's language.
    pub tenant_locale: String,
    /// 1: add an unsubscribe footer when the content places no link itself.
    pub unsubscribe_footer: i64,
    /// 1: `subject`/`html`/`text_body` are a template (else inline content).
    pub templated: i64,
    /// The send's `variables` (a JSON object).
    pub variables: Option<String>,
    /// 1: carries List-Unsubscribe headers (all campaign mail; transactional on request).
    pub list_unsubscribe: i64,
}
