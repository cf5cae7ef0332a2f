//! Fair shares of the provider's rate: whose mail goes next.
//!
//! Start-time fair queueing, counted in provider requests. Each queue (a
//! tenant in a lane, or a campaign within its tenant) has a finish tag, its
//! *pass*; the group of queues has a virtual time, the start tag of the
//! request served last. A queue's next request starts at `max(pass, vtime)`,
//! the queue whose request starts first is served, and serving `n` requests
//! moves its pass on by `n` requests divided by its weight.
//!
//! So a queue that was idle joins at the virtual time — at once, but without
//! credit saved up while it had nothing to send — and two busy queues of
//! weights 2 and 1 are served two requests to one. A queue alone is served
//! every time (the scheme is work-conserving). The tags live in the database
//! (`send_turns`, `send_clocks`, `campaign_turns`) and every claim moves
//! them in its own transaction, so several processes share one turn order.

/// A request's cost at weight 1, in pass units (a weight divides it).
pub const REQUEST: i64 = 1_000_000;

/// The largest weight an operator may give a tenant.
pub const MAX_WEIGHT: i64 = 1_000;

/// When a queue's next request starts: not before the group's virtual time.
pub fn start(pass: i64, vtime: i64) -> i64 {
    pass.max(vtime)
}

/// What serving `requests` requests costs a queue of `weight`.
pub fn cost(requests: usize, weight: i64) -> i64 {
    let requests = i64::try_from(requests).unwrap_or(i64::MAX / REQUEST);
    requests.saturating_mul(REQUEST) / weight.clamp(1, MAX_WEIGHT)
}

/// The pass after a queue whose request started at `start` served `requests`.
pub fn served(start: i64, requests: usize, weight: i64) -> i64 {
    start.saturating_add(cost(requests, weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim's rule, over queues held in memory: `(weight, requests waiting, pass)`.
    struct Group {
        vtime: i64,
        queues: Vec<(i64, usize, i64)>,
    }

    impl Group {
        /// Serves one turn of up to `quantum` requests; the queue served.
        fn serve(&mut self, quantum: usize) -> Option<usize> {
            let vtime = self.vtime;
            let next = (0..self.queues.len())
                .filter(|&i| self.queues[i].1 > 0)
                .min_by_key(|&i| (start(self.queues[i].2, vtime), i))?;
            let (weight, waiting, pass) = self.queues[next];
            let begin = start(pass, vtime);
            let n = quantum.min(waiting);
            self.queues[next] = (weight, waiting - n, served(begin, n, weight));
            self.vtime = self.vtime.max(begin);
            Some(next)
        }
    }

    #[test]
    fn fifty_small_queues_arriving_behind_a_big_one_are_all_served_within_their_own_requests() {
        let mut g = Group { vtime: 0, queues: vec![(1, 1_000, 0)] };
        for _ in 0..100 {
            g.serve(1);
        }
        // Fifty tenants of one request each arrive.
        g.queues.extend((0..50).map(|_| (1, 1, 0)));
        let order: Vec<usize> = (0..51).filter_map(|_| g.serve(1)).collect();
        let small_served = order.iter().filter(|&&q| q > 0).count();
        // The big one may take the turn it was due, no more, before the last small one.
        let last_small = order.iter().rposition(|&q| q > 0).unwrap();
        assert_eq!(small_served, 50, "{order:?}");
        assert!(last_small <= 50, "the last small request went {last_small}th: {order:?}");
    }

    #[test]
    fn busy_queues_share_by_weight() {
        let mut g = Group { vtime: 0, queues: vec![(2, 10_000, 0), (1, 10_000, 0), (1, 10_000, 0)] };
        let mut served = [0usize; 3];
        for _ in 0..4_000 {
            served[g.serve(1).unwrap()] += 1;
        }
        assert_eq!(served, [2_000, 1_000, 1_000]);
    }

    #[test]
    fn an_idle_queue_saves_no_credit_and_a_lone_queue_gets_every_turn() {
        let mut g = Group { vtime: 0, queues: vec![(1, 10_000, 0), (1, 0, 0)] };
        for _ in 0..500 {
            assert_eq!(g.serve(4), Some(0), "alone, it is served every time");
        }
        // The second queue wakes with work: it alternates with the first rather
        // than being owed the 2,000 requests it did not send.
        g.queues[1].1 = 10_000;
        let turns: Vec<usize> = (0..10).filter_map(|_| g.serve(4)).collect();
        assert_eq!(turns.iter().filter(|&&q| q == 1).count(), 5, "{turns:?}");
    }

    #[test]
    fn cost_is_divided_by_the_weight_and_bounded() {
        assert_eq!(cost(3, 1), 3 * REQUEST);
        assert_eq!(cost(3, 2), 3 * REQUEST / 2);
        assert_eq!(cost(1, 0), REQUEST, "a weight below 1 counts as 1");
        assert_eq!(cost(1, i64::MAX), REQUEST / MAX_WEIGHT);
        assert_eq!(start(5, 9), 9);
        assert_eq!(start(12, 9), 12);
    }
}
