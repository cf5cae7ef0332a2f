//! The statuses of a message and of a campaign: one list, one order.

use std::fmt;

/// Where a message stands. Declared in delivery order: a message only ever
/// moves to a later status (see [`MessageStatus::rank`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Queued,
    Paused,
    Sending,
    /// Given up by mailroom (permanent failure, retries exhausted): a dead letter.
    Dead,
    Cancelled,
    Sent,
    Delivered,
    Opened,
    Clicked,
    Suppressed,
    Failed,
    Bounced,
    Complained,
}

impl MessageStatus {
    pub const ALL: [Self; 13] = [
        Self::Queued,
        Self::Paused,
        Self::Sending,
        Self::Dead,
        Self::Cancelled,
        Self::Sent,
        Self::Delivered,
        Self::Opened,
        Self::Clicked,
        Self::Suppressed,
        Self::Failed,
        Self::Bounced,
        Self::Complained,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Paused => "paused",
            Self::Sending => "sending",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Suppressed => "suppressed",
            Self::Failed => "failed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Delivery progress. Whatever mailroom decided on its own side (`dead`,
    /// `cancelled`) ranks below every status the provider reports: an email the
    /// provider accepted after all is never shown as dead or cancelled. A late
    /// `delivered` never undoes a `bounced`; a complaint outranks everything.
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued | Self::Paused => 0,
            Self::Sending => 1,
            Self::Dead | Self::Cancelled => 2,
            Self::Sent => 3,
            Self::Delivered => 4,
            Self::Opened => 5,
            Self::Clicked => 6,
            Self::Suppressed | Self::Failed | Self::Bounced => 7,
            Self::Complained => 8,
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a campaign stands, derived from its messages (and a pause or cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignStatus {
    Scheduled,
    Queued,
    Sending,
    Paused,
    Sent,
    /// Some messages died, not all.
    PartiallyFailed,
    /// Every message died.
    Failed,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Paused => "paused",
            Self::Sent => "sent",
            Self::PartiallyFailed => "partially_failed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use MessageStatus::*;

    #[test]
    fn a_late_delivery_never_outranks_a_bounce_or_complaint() {
        for later in [Sent, Delivered, Opened, Clicked] {
            assert!(later.rank() < Bounced.rank(), "{later}");
            assert!(later.rank() < Complained.rank(), "{later}");
        }
        assert!(Bounced.rank() < Complained.rank());
    }

    #[test]
    fn every_provider_status_outranks_dead_and_cancelled() {
        for provider_side in [Sent, Delivered, Opened, Clicked, Bounced, Failed, Suppressed, Complained] {
            assert!(Dead.rank() < provider_side.rank(), "{provider_side}");
            assert!(Cancelled.rank() < provider_side.rank(), "{provider_side}");
        }
    }

    #[test]
    fn every_status_has_one_name() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MessageStatus::parse("nope"), None);
    }
}
