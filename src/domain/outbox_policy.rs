//! The outbox's pure rules: what a provider request carries, when a
//! campaign's queued mail is held, and when a batch that is due again is given
//! up rather than sent. The store reads and writes; these decide.

/// Most emails Resend takes in one `POST /emails/batch`.
pub const MAX_BATCH: i64 = 100;

/// Resend keeps an `Idempotency-Key` for 24 hours. A request whose earlier
/// attempt may have been accepted is resent under the same key only inside this
/// window (with an hour's margin); later it goes to the dead letters for review.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 23 * 3_600_000;

/// How long a held campaign's queued mail waits before its tenant's domain is checked again.
pub const HOLD_MS: i64 = 30_000;

/// Claims that ended without an answer (the worker died) before a batch is
/// given up as a dead letter rather than claimed forever.
pub const MAX_LOST_CLAIMS: i64 = 5;

/// What kind of provider request a batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchShape {
    /// One transactional email (`POST /emails`), ahead of campaign mail for send slots.
    Transactional,
    /// Up to [`MAX_BATCH`] emails of one campaign (`POST /emails/batch`).
    Campaign,
    /// One campaign email split out of a batch the provider refused (`POST
    /// /emails`): it goes alone, but keeps campaign priority.
    CampaignSingle,
}

impl BatchShape {
    pub fn new(transactional: bool, single: bool) -> Self {
        match (transactional, single) {
            (true, _) => Self::Transactional,
            (false, true) => Self::CampaignSingle,
            (false, false) => Self::Campaign,
        }
    }

    /// One email (`POST /emails`) rather than a batch.
    pub fn single(self) -> bool {
        self != Self::Campaign
    }

    /// Transactional mail takes precedence over campaigns for send slots.
    pub fn transactional(self) -> bool {
        self == Self::Transactional
    }
}

/// Renders messages into the request body: one email, or a JSON array of them.
/// The same messages always give the same bytes.
pub fn request_body(emails: &[String], single: bool) -> String {
    match emails {
        [one] if single => one.clone(),
        _ => format!("[{}]", emails.join(",")),
    }
}

/// Groups rendered emails into requests of at most [`MAX_BATCH`] emails and
/// (unless one email alone is larger) `max_bytes` of body.
pub fn chunk_by_size<T>(rendered: Vec<(T, String)>, max_bytes: usize) -> Vec<Vec<(T, String)>> {
    let mut chunks: Vec<Vec<(T, String)>> = Vec::new();
    let mut bytes = 0;
    for (m, json) in rendered {
        let fits = chunks
            .last()
            .is_some_and(|c| (c.len() as i64) < MAX_BATCH && bytes + json.len() < max_bytes.saturating_sub(2));
        if !fits {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += json.len() + 1;
        if let Some(c) = chunks.last_mut() {
            c.push((m, json));
        }
    }
    chunks
}

/// Whether a campaign's queued mail is held: its tenant's domain is not
/// verified (the provider reported it failing), or its reputation is paused.
/// Transactional mail (no campaign) is never held.
pub fn campaign_held(campaign: bool, domain_status: Option<&str>, reputation: Option<&str>) -> bool {
    campaign && (domain_status != Some("verified") || reputation == Some("paused"))
}

/// Since when a batch due again may already have reached the provider: since
/// an earlier attempt's outcome became unknown, or, when a claim is still held
/// (its worker never reported), at the latest since it was claimed.
pub fn uncertain_since(claim_held: bool, uncertain_since: Option<i64>, claimed_at: i64) -> Option<i64> {
    match (claim_held, uncertain_since) {
        (_, Some(t)) => Some(t),
        (true, None) => Some(claimed_at),
        (false, None) => None,
    }
}

/// A batch due again, as the rules for giving it up see it.
pub struct DueAgain<'a> {
    /// Its campaign was cancelled or deleted, or it has no messages left.
    pub stopped: bool,
    pub uncertain_since: Option<i64>,
    /// Why it can no longer be rendered, if it cannot.
    pub render_error: Option<&'a str>,
    pub claims: i64,
    pub attempts: i64,
}

/// A batch settled without sending: the batch's status, its messages', and why.
#[derive(Debug, PartialEq, Eq)]
pub struct GiveUp {
    pub batch_status: &'static str,
    pub message_status: &'static str,
    pub reason: String,
}

/// Whether a batch due again is given up rather than sent, in this order:
/// its campaign stopped; resending could duplicate (Resend's 24 h idempotency
/// window has passed since an attempt that may have been accepted); it no
/// longer renders; its claims kept being lost.
pub fn give_up(due: &DueAgain<'_>, now: i64) -> Option<GiveUp> {
    let (batch_status, message_status, reason) = if due.stopped {
        ("cancelled", "cancelled", "the campaign was cancelled or deleted before this retry".to_owned())
    } else if due.uncertain_since.is_some_and(|t| now - t > IDEMPOTENCY_WINDOW_MS) {
        (
            "expired",
            "dead",
            "not retried: an earlier attempt may have been delivered and Resend's 24 h idempotency window \
             has passed, so a retry could send it twice; check the provider before retrying this dead letter"
                .to_owned(),
        )
    } else if let Some(reason) = due.render_error {
        ("failed", "dead", reason.to_owned())
    } else if due.claims - due.attempts >= MAX_LOST_CLAIMS {
        (
            "failed",
            "dead",
            format!("claimed {} times without an answer from the provider; check the worker logs", due.claims),
        )
    } else {
        return None;
    };
    Some(GiveUp { batch_status, message_status, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_capped_by_count_and_by_bytes() {
        let render = |n: usize| -> Vec<(usize, String)> {
            (0..n).map(|i| (i, format!("{{\"html\":\"{}\"}}", "x".repeat(1000)))).collect()
        };
        let by_count = chunk_by_size(render(250), usize::MAX);
        assert_eq!(by_count.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
        let by_bytes = chunk_by_size(render(10), 3_500);
        assert_eq!(by_bytes.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        for c in &by_bytes {
            let body = request_body(&c.iter().map(|(_, j)| j.clone()).collect::<Vec<_>>(), false);
            assert!(body.len() <= 3_500 || c.len() == 1);
        }
        // One email larger than the cap still goes, alone.
        assert_eq!(chunk_by_size(render(2), 10).iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
    }

    #[test]
    fn a_request_body_is_the_json_array_of_its_emails() {
        let emails = vec![r#"{"a":1}"#.to_owned(), r#"{"b":2}"#.to_owned()];
        let values: Vec<serde_json::Value> = emails.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert_eq!(request_body(&emails, false), serde_json::to_string(&values).unwrap());
        assert_eq!(request_body(&emails[..1], true), emails[0]);
    }

    #[test]
    fn campaign_mail_is_held_while_the_domain_fails_or_the_reputation_is_paused() {
        assert!(!campaign_held(true, Some("verified"), None));
        assert!(campaign_held(true, Some("failed"), None));
        assert!(campaign_held(true, Some("verified"), Some("paused")));
        assert!(!campaign_held(false, Some("failed"), Some("paused")));
    }

    #[test]
    fn a_due_batch_is_given_up_when_stopped_expired_unrenderable_or_lost_too_often() {
        let due = |stopped, uncertain_since, render_error, claims| DueAgain {
            stopped,
            uncertain_since,
            render_error,
            claims,
            attempts: 1,
        };
        let now = IDEMPOTENCY_WINDOW_MS + 10;
        assert_eq!(give_up(&due(false, Some(now - 5), None, 1), now), None);
        assert_eq!(give_up(&due(true, None, None, 1), now).map(|g| g.message_status), Some("cancelled"));
        assert_eq!(give_up(&due(false, Some(0), None, 1), now).map(|g| g.batch_status), Some("expired"));
        assert_eq!(give_up(&due(false, None, Some("bad"), 1), now).map(|g| g.reason), Some("bad".to_owned()));
        assert_eq!(give_up(&due(false, None, None, 6), now).map(|g| g.batch_status), Some("failed"));
        assert_eq!(give_up(&due(false, None, None, 5), now), None);
        assert_eq!(uncertain_since(true, None, 7), Some(7));
        assert_eq!(uncertain_since(true, Some(3), 7), Some(3));
        assert_eq!(uncertain_since(false, None, 7), None);
    }
}
