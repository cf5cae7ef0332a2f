//! The reputation guard's rules, apart from any storage: a tenant's rolling
//! hard-bounce and complaint rates against thresholds. The defaults are
//! Resend's own account-health limits (bounces under 4%, complaints under
//! 0.08%) for `paused`, and half of them for `warning`, so one tenant cannot
//! get the shared provider account paused.

/// A tenant's reputation state, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReputationState {
    Ok,
    Warning,
    Paused,
}

impl ReputationState {
    pub const ALL: [ReputationState; 3] = [Self::Ok, Self::Warning, Self::Paused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Paused => "paused",
        }
    }

    /// A stored state; anything unknown reads as `ok`.
    pub fn parse(s: &str) -> Self {
        match s {
            "warning" => Self::Warning,
            "paused" => Self::Paused,
            _ => Self::Ok,
        }
    }
}

/// Figures of a tenant's window: messages, each counted once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReputationCounts {
    pub sent: i64,
    pub delivered: i64,
    /// Hard (`Permanent`) bounces only: soft ones say nothing about the list.
    pub bounced: i64,
    pub complained: i64,
}

impl ReputationCounts {
    /// Hard bounces / sent (0 when nothing was sent).
    pub fn bounce_rate(&self) -> f64 {
        ratio(self.bounced, self.sent)
    }

    /// Complaints / delivered. A complaint implies a delivery, so the
    /// denominator is at least the complaints (a missing `delivered` event
    /// cannot make the rate infinite).
    pub fn complaint_rate(&self) -> f64 {
        ratio(self.complained, self.delivered.max(self.complained))
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b <= 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Thresholds in parts per million (so comparisons are exact integers:
/// 8 bounces of 200 is exactly 4%).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReputationPolicy {
    /// Below this many sent in the window, rates are not judged.
    pub min_sent: i64,
    pub window_ms: i64,
    pub bounce_warning_ppm: i64,
    pub bounce_pause_ppm: i64,
    pub complaint_warning_ppm: i64,
    pub complaint_pause_ppm: i64,
    /// Whether state changes are queued for the operator's alert webhook.
    pub alert_operator: bool,
}

impl Default for ReputationPolicy {
    fn default() -> Self {
        Self {
            min_sent: 200,
            window_ms: 7 * 24 * 3_600_000,
            bounce_warning_ppm: percent_to_ppm(2.0),
            bounce_pause_ppm: percent_to_ppm(4.0),
            complaint_warning_ppm: percent_to_ppm(0.04),
            complaint_pause_ppm: percent_to_ppm(0.08),
            alert_operator: false,
        }
    }
}

/// A percentage (4 for 4%) in parts per million, rounded.
pub fn percent_to_ppm(percent: f64) -> i64 {
    (percent * 10_000.0).round() as i64
}

/// `ppm` as a fraction (0 to 1), as the API shows thresholds and rates.
pub fn ppm_to_fraction(ppm: i64) -> f64 {
    ppm as f64 / 1_000_000.0
}

/// Whether `part / whole` reaches `ppm` (exactly, in integers).
fn reaches(part: i64, whole: i64, ppm: i64) -> bool {
    whole > 0 && i128::from(part) * 1_000_000 >= i128::from(ppm) * i128::from(whole)
}

impl ReputationPolicy {
    /// Whether the window has enough mail for its rates to be judged.
    pub fn counts(&self, c: &ReputationCounts) -> bool {
        c.sent >= self.min_sent
    }

    /// The state these figures call for, and why.
    pub fn level(&self, c: &ReputationCounts) -> (ReputationState, String) {
        if !self.counts(c) {
            return (
                ReputationState::Ok,
                format!("{} sent in the window, under the minimum of {}", c.sent, self.min_sent),
            );
        }
        let complaints_of = c.delivered.max(c.complained);
        let describe = |what: &str, pct: i64| {
            format!(
                "{what} reached {}% ({} bounced and {} complained of {} sent, {} delivered)",
                pct as f64 / 10_000.0,
                c.bounced,
                c.complained,
                c.sent,
                c.delivered
            )
        };
        if reaches(c.bounced, c.sent, self.bounce_pause_ppm) {
            (ReputationState::Paused, describe("the hard-bounce rate", self.bounce_pause_ppm))
        } else if reaches(c.complained, complaints_of, self.complaint_pause_ppm) {
            (ReputationState::Paused, describe("the complaint rate", self.complaint_pause_ppm))
        } else if reaches(c.bounced, c.sent, self.bounce_warning_ppm) {
            (ReputationState::Warning, describe("the hard-bounce rate", self.bounce_warning_ppm))
        } else if reaches(c.complained, complaints_of, self.complaint_warning_ppm) {
            (ReputationState::Warning, describe("the complaint rate", self.complaint_warning_ppm))
        } else {
            (ReputationState::Ok, "the rates are under the warning thresholds".to_owned())
        }
    }

    /// The automatic move from `current`, if any: up to `warning` or `paused`,
    /// down from `warning` to `ok`; never out of `paused` (only an admin resumes).
    pub fn transition(&self, current: ReputationState, c: &ReputationCounts) -> Option<(ReputationState, String)> {
        let (target, reason) = self.level(c);
        match (current, target) {
            (ReputationState::Paused, _) => None,
            (from, to) if from == to => None,
            (_, to) => Some((to, reason)),
        }
    }
}

/// How a tenant's standing reads, in the same words on every page and in the
/// API: the guard's state, except that an `ok` the guard had too little mail
/// to judge says so (it is not a clean bill of health).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Fewer than `min_sent` emails in the window: the rates are not judged.
    NotJudged {
        min_sent: i64,
    },
    Warning,
    Paused,
}

impl Verdict {
    pub fn words(self) -> String {
        match self {
            Self::Ok => "ok".to_owned(),
            Self::NotJudged { min_sent } => format!("not judged (under {min_sent} sent)"),
            Self::Warning => "warning".to_owned(),
            Self::Paused => "paused".to_owned(),
        }
    }
}

impl ReputationPolicy {
    /// The verdict on a tenant in `state` with these window figures. The state
    /// is the guard's decision (a pause holds until an operator resumes it,
    /// however little mail came since); only an `ok` is qualified by the volume.
    pub fn verdict(&self, state: ReputationState, c: &ReputationCounts) -> Verdict {
        match state {
            ReputationState::Paused => Verdict::Paused,
            ReputationState::Warning => Verdict::Warning,
            ReputationState::Ok if !self.counts(c) => Verdict::NotJudged { min_sent: self.min_sent },
            ReputationState::Ok => Verdict::Ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sent: i64, delivered: i64, bounced: i64, complained: i64) -> ReputationCounts {
        ReputationCounts { sent, delivered, bounced, complained }
    }

    #[test]
    fn nothing_is_judged_under_the_minimum_sent() {
        let p = ReputationPolicy::default();
        assert_eq!(p.level(&counts(199, 199, 50, 10)).0, ReputationState::Ok);
        assert_eq!(p.level(&counts(200, 200, 8, 0)).0, ReputationState::Paused);
    }

    #[test]
    fn thresholds_are_exact_at_the_boundary() {
        let p = ReputationPolicy::default();
        assert_eq!(p.level(&counts(1000, 1000, 39, 0)).0, ReputationState::Warning, "3.9%");
        assert_eq!(p.level(&counts(1000, 1000, 40, 0)).0, ReputationState::Paused, "4%");
        assert_eq!(p.level(&counts(1000, 1000, 19, 0)).0, ReputationState::Ok, "1.9%");
        assert_eq!(p.level(&counts(1000, 1000, 20, 0)).0, ReputationState::Warning, "2%");
        assert_eq!(p.level(&counts(2500, 2500, 0, 1)).0, ReputationState::Warning, "0.04%");
        assert_eq!(p.level(&counts(2500, 2500, 0, 2)).0, ReputationState::Paused, "0.08%");
        assert_eq!(p.level(&counts(2501, 2501, 0, 1)).0, ReputationState::Ok, "just under 0.04%");
    }

    #[test]
    fn paused_is_left_only_by_a_resume() {
        let p = ReputationPolicy::default();
        assert_eq!(p.transition(ReputationState::Paused, &counts(1000, 1000, 0, 0)), None);
        assert_eq!(
            p.transition(ReputationState::Warning, &counts(1000, 1000, 0, 0)).map(|t| t.0),
            Some(ReputationState::Ok)
        );
        assert_eq!(
            p.transition(ReputationState::Ok, &counts(1000, 1000, 50, 0)).map(|t| t.0),
            Some(ReputationState::Paused)
        );
        assert_eq!(p.transition(ReputationState::Ok, &counts(1000, 1000, 0, 0)), None);
    }

    #[test]
    fn percentages_become_whole_parts_per_million() {
        assert_eq!(percent_to_ppm(0.08), 800);
        assert_eq!(percent_to_ppm(4.0), 40_000);
        assert!((ppm_to_fraction(800) - 0.0008).abs() < 1e-12);
    }

    #[test]
    fn an_ok_under_the_minimum_volume_reads_not_judged_and_a_pause_holds_whatever_the_volume() {
        let p = ReputationPolicy::default();
        let few = counts(10, 7, 3, 0);
        assert_eq!(p.verdict(ReputationState::Ok, &few).words(), "not judged (under 200 sent)");
        assert_eq!(p.verdict(ReputationState::Ok, &counts(200, 200, 0, 0)).words(), "ok");
        assert_eq!(p.verdict(ReputationState::Paused, &few).words(), "paused");
        assert_eq!(p.verdict(ReputationState::Warning, &counts(500, 500, 12, 0)).words(), "warning");
    }
}
