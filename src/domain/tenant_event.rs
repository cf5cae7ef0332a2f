//! The events a tenant's webhook endpoint may subscribe to: Resend's `email.*`
//! delivery events, as they happen to the tenant's own mail, and mailroom's own.

/// Every type an endpoint may subscribe to.
pub const TENANT_EVENT_TYPES: [&str; 15] = [
    "email.sent",
    "email.delivered",
    "email.delivery_delayed",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.complained",
    "email.failed",
    "email.scheduled",
    "email.suppressed",
    "contact.unsubscribed",
    // A recipient left one topic (one-click from a topic campaign) and still
    // gets the rest: apart from `contact.unsubscribed`, which means no more
    // marketing mail at all, so that a handler of that one never over-reacts.
    "contact.topic_unsubscribed",
    "reputation.changed",
    "automation.alert",
    "campaign.sent",
];

/// Sent by `POST .../webhooks/{wid}/test`, whatever the endpoint subscribes to.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

pub fn is_tenant_event_type(t: &str) -> bool {
    TENANT_EVENT_TYPES.contains(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resend_email_event_and_mailroom_event_is_known() {
        assert!(is_tenant_event_type("email.delivery_delayed"));
        assert!(is_tenant_event_type("contact.unsubscribed"));
        assert!(!is_tenant_event_type("email.everything"));
        assert!(!is_tenant_event_type(TEST_EVENT_TYPE));
    }
}
