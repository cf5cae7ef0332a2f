//! The compose form: its fields, carried on hidden by the confirmation page,
//! and the send request they make (the API's `/send` body, as a form).

use serde::{Deserialize, Serialize};

use super::mail_templates::{parse_variables, refuse_nul};
use crate::error::ApiError;
use crate::service::sending;

/// The compose form's fields; the confirmation page carries them on, hidden.
#[derive(Deserialize, Serialize, Default)]
pub struct ComposeForm {
    #[serde(default, skip_serializing)]
    pub csrf: String,
    /// `inline` (subject, html, text) or `template` (template_id, variables).
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub html: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub template_id: String,
    /// A JSON object, for a template.
    #[serde(default)]
    pub variables: String,
    /// `all`, `segment:{id}` or `tag:{tag}`.
    #[serde(default)]
    pub audience: String,
    #[serde(default)]
    pub tag: String,
    /// An address on the verified domain; empty: the tenant's default sender.
    #[serde(default)]
    pub from: String,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` input), read as UTC.
    #[serde(default)]
    pub scheduled_at: String,
    /// The template version the confirmation showed (set by that page), so
    /// the send goes out as confirmed or not at all.
    #[serde(default)]
    pub template_version: String,
    /// The compose page's own buttons: `preview`, `test` (send a test to
    /// `test_to`); anything else (the confirmation's Back) shows the form again.
    #[serde(default, skip_serializing)]
    pub action: String,
    /// Up to five addresses for a test send, separated by commas or spaces.
    #[serde(default)]
    pub test_to: String,
    /// Only contacts subscribed to this topic (its id; empty: no topic).
    #[serde(default)]
    pub topic_id: String,
}

impl ComposeForm {
    /// The send request for this form (the API's, as a form). An audience it does not know is
    /// refused, never read as "everyone": a typo must not widen an audience.
    pub fn send_in(&self) -> Result<sending::CampaignInput, ApiError> {
        refuse_nul(&[
            ("The subject", &self.subject),
            ("The html", &self.html),
            ("The text", &self.text),
            ("The variables", &self.variables),
            ("The tag", &self.tag),
            ("The from address", &self.from),
            ("The topic", &self.topic_id),
        ])?;
        let (segment_id, tag) = match (self.audience.as_str(), self.audience.split_once(':')) {
            ("all", _) => (None, None),
            (_, Some(("segment", id))) => (Some(id.to_owned()), None),
            ("tag", _) if !self.tag.trim().is_empty() => (None, Some(self.tag.clone())),
            ("tag", _) => return Err(ApiError::validation("name the tag the campaign goes to")),
            _ => return Err(ApiError::validation("choose who the campaign goes to")),
        };
        let scheduled_at = Some(self.scheduled_at.trim()).filter(|s| !s.is_empty()).map(|s| {
            if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                format!("{s}Z")
            }
        });
        let (subject, html, text, template_id, variables) = if self.content == "template" {
            let id = self.template_id.trim();
            if id.is_empty() {
                return Err(ApiError::validation("choose the template to send"));
            }
            (None, None, None, Some(id.to_owned()), parse_variables(&self.variables)?)
        } else {
            let text = Some(self.text.clone()).filter(|t| !t.trim().is_empty());
            (Some(self.subject.clone()), Some(self.html.clone()), text, None, None)
        };
        Ok(sending::CampaignInput {
            subject,
            html,
            text,
            template_id,
            variables,
            segment_id,
            tag,
            scheduled_at,
            from: Some(self.from.trim().to_owned()).filter(|f| !f.is_empty()),
            topic_id: Some(self.topic_id.trim().to_owned()).filter(|t| !t.is_empty()),
            ..Default::default()
        })
    }
}

super::tenant_scope::csrf_field!(ComposeForm);
