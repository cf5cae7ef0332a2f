//! Consent records (issue 23): what changed in a contact's consent, and by
//! whom or what. A record is written with the change and never rewritten.

use super::topic::{TopicDefault, TopicState};

/// Where a change of consent came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentSource {
    Form,
    /// The tenant's server, through the API.
    Api,
    Import,
    PreferenceCentre,
    /// An RFC 8058 one-click unsubscribe (or its page) from an email.
    OneClick,
    Complaint,
    Bounce,
    Dashboard,
    Automation,
    /// The record backfilled for a contact that existed before consent was recorded.
    BeforeConsentRecords,
}

impl ConsentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Api => "api",
            Self::Import => "import",
            Self::PreferenceCentre => "preference_centre",
            Self::OneClick => "one_click",
            Self::Complaint => "complaint",
            Self::Bounce => "bounce",
            Self::Dashboard => "dashboard",
            Self::Automation => "automation",
            Self::BeforeConsentRecords => "before_consent_records",
        }
    }
}

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentChange {
    Created,
    Confirmed,
    TopicSubscribed,
    TopicUnsubscribed,
    Unsubscribed,
    Resubscribed,
    /// The address suppressed by hand or by an automation.
    Suppressed,
    SuppressedBounce,
    SuppressedComplaint,
    Imported,
    /// The person's data was erased (GDPR art. 17); the record names no one.
    Erased,
}

impl ConsentChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Confirmed => "confirmed",
            Self::TopicSubscribed => "topic_subscribed",
            Self::TopicUnsubscribed => "topic_unsubscribed",
            Self::Unsubscribed => "unsubscribed",
            Self::Resubscribed => "resubscribed",
            Self::Suppressed => "suppressed",
            Self::SuppressedBounce => "suppressed_bounce",
            Self::SuppressedComplaint => "suppressed_complaint",
            Self::Imported => "imported",
            Self::Erased => "erased",
        }
    }

    /// The change a topic's new effective state records.
    pub fn topic(state: TopicState) -> Self {
        match state {
            TopicState::Subscribed => Self::TopicSubscribed,
            TopicState::Unsubscribed => Self::TopicUnsubscribed,
        }
    }
}

/// The person's client, where there was one (a public page's POST).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentClient {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Who or what made a change, as its record tells: the source, and the
/// campaign, form, consent text and client when there were any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentOrigin {
    pub source: ConsentSource,
    pub campaign_id: Option<String>,
    pub form_id: Option<String>,
    pub consent_text: Option<String>,
    pub consent_text_version: Option<String>,
    pub client: Option<ConsentClient>,
}

impl ConsentOrigin {
    pub fn new(source: ConsentSource) -> Self {
        Self { source, campaign_id: None, form_id: None, consent_text: None, consent_text_version: None, client: None }
    }

    /// A change the tenant's own server asked for through the API (no
    /// client of the person's is kept).
    pub fn api() -> Self {
        Self::new(ConsentSource::Api)
    }
}

/// A contact's stand on one topic before and after a change: its own choice
/// as stored (`None`: at the default) and the topic's default.
pub struct TopicStand<'a> {
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub default: TopicDefault,
}

impl TopicStand<'_> {
    /// The change to record, if any: a choice the contact made (even one
    /// equal to the default: it is theirs now), or a return to the default
    /// that changes where they stand. Forgetting a choice equal to the
    /// default changes nothing the contact would notice, and is not recorded.
    pub fn change(&self) -> Option<ConsentChange> {
        if self.before == self.after {
            return None;
        }
        let was = TopicState::effective(self.before, self.default);
        let is = TopicState::effective(self.after, self.default);
        (self.after.is_some() || was != is).then(|| ConsentChange::topic(is))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_choice_made_or_a_default_that_moves_the_contact_is_a_change() {
        let stand = |before, after, default| TopicStand { before, after, default }.change();
        assert_eq!(stand(None, Some("subscribed"), TopicDefault::OptOut), Some(ConsentChange::TopicSubscribed));
        assert_eq!(
            stand(Some("subscribed"), Some("unsubscribed"), TopicDefault::OptIn),
            Some(ConsentChange::TopicUnsubscribed)
        );
        assert_eq!(stand(Some("subscribed"), None, TopicDefault::OptIn), Some(ConsentChange::TopicUnsubscribed));
        assert_eq!(stand(Some("subscribed"), None, TopicDefault::OptOut), None);
        assert_eq!(stand(Some("subscribed"), Some("subscribed"), TopicDefault::OptIn), None);
    }
}
