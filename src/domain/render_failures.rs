//! When a campaign's renders keep failing, the campaign is paused rather than
//! dead-lettering recipient after recipient (issue 20): a template broken for
//! everyone would otherwise drain the whole audience into dead letters, one
//! claim after another, while the tenant could have fixed it.

/// Failures in a row (recipient after recipient) that pause a campaign.
pub const FAILURES_IN_A_ROW: i64 = 10;
/// The first renders of a campaign whose failures are counted ...
pub const FIRST_RENDERS: i64 = 200;
/// ... and how many of those may fail (5% of them) before it is paused.
pub const FIRST_RENDERS_MAY_FAIL: i64 = FIRST_RENDERS / 20;

/// The reason a campaign paused this way carries (API, dashboard, metric).
pub const RENDER_FAILING: &str = "render_failing";

/// A campaign's render tally since it started or was last resumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderTally {
    /// Renders counted among its first [`FIRST_RENDERS`].
    pub counted: i64,
    /// Failures among those.
    pub failed: i64,
    /// Failures since the last render that worked.
    pub failed_in_a_row: i64,
}

impl RenderTally {
    /// The tally after one more recipient's render.
    pub fn record(self, ok: bool) -> Self {
        let first = self.counted < FIRST_RENDERS;
        Self {
            counted: self.counted + i64::from(first),
            failed: self.failed + i64::from(first && !ok),
            failed_in_a_row: if ok { 0 } else { self.failed_in_a_row + 1 },
        }
    }

    /// Whether the campaign should be paused: [`FAILURES_IN_A_ROW`] in a row,
    /// or more than [`FIRST_RENDERS_MAY_FAIL`] of its first [`FIRST_RENDERS`].
    pub fn failing(&self) -> bool {
        self.failed_in_a_row >= FAILURES_IN_A_ROW || self.failed > FIRST_RENDERS_MAY_FAIL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(outcomes: &[bool]) -> RenderTally {
        outcomes.iter().fold(RenderTally::default(), |t, &ok| t.record(ok))
    }

    #[test]
    fn ten_failures_in_a_row_pause_but_nine_do_not() {
        assert!(!after(&[false; 9]).failing());
        assert!(after(&[false; 10]).failing());
        // Past the first 200, where only the row counts.
        let mut broken_once = vec![true; 200];
        broken_once.extend([false; 9]);
        broken_once.push(true);
        broken_once.extend([false; 9]);
        assert!(!after(&broken_once).failing(), "a render that works starts the row again");
    }

    #[test]
    fn more_than_five_percent_of_the_first_two_hundred_pause() {
        // Every other recipient fails: never ten in a row, but 11 of the first 22.
        let alternating: Vec<bool> = (0..22).map(|i| i % 2 == 0).collect();
        assert!(after(&alternating).failing());
        // Ten of the first 200 is 5%, not more.
        let ten_spread: Vec<bool> = (0..200).map(|i| i % 20 != 0).collect();
        let t = after(&ten_spread);
        assert_eq!((t.counted, t.failed), (200, 10));
        assert!(!t.failing());
    }

    #[test]
    fn failures_after_the_first_two_hundred_count_only_in_a_row() {
        let mut outcomes = vec![true; 200];
        outcomes.extend((0..100).map(|i| i % 2 == 0));
        let t = after(&outcomes);
        assert_eq!((t.counted, t.failed), (200, 0));
        assert!(!t.failing());
    }
}
