//! Fair shares of webhook deliveries to tenants (issue 20): which due
//! deliveries a claim takes, and how often a tenant may send an endpoint a
//! test event or a replay. Pure rules; the store counts and the notifier sends.

/// Deliveries in flight at once (claimed and not yet recorded) at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlightCaps {
    /// To one endpoint (and to the operator's alert URL).
    pub per_endpoint: usize,
    /// To one tenant's endpoints together.
    pub per_tenant: usize,
}

/// A due delivery a claim could take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: String,
    /// Empty for an alert to the operator.
    pub endpoint_id: String,
    pub tenant_id: String,
}

/// A delivery already in flight (to count against the caps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub endpoint_id: String,
    pub tenant_id: String,
    pub count: usize,
}

/// Takes, from `due` — each endpoint's oldest due deliveries, listed
/// endpoints in turn (every endpoint's first, then every endpoint's second,
/// ...) — at most `max` that keep every endpoint and tenant within `caps`,
/// counting what is already `in_flight`. A saturated endpoint or tenant is
/// passed over, never waited for, so one slow endpoint cannot take the turn
/// of another. Alerts to the operator count against the alert URL's endpoint
/// cap only: they are not the tenant's deliveries.
pub fn take_in_turn<'a>(
    due: &'a [DueDelivery],
    in_flight: &[InFlight],
    caps: InFlightCaps,
    max: usize,
) -> Vec<&'a DueDelivery> {
    use std::collections::HashMap;
    let mut per_endpoint: HashMap<&str, usize> = HashMap::new();
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for f in in_flight {
        *per_endpoint.entry(&f.endpoint_id).or_default() += f.count;
        if !f.endpoint_id.is_empty() {
            *per_tenant.entry(&f.tenant_id).or_default() += f.count;
        }
    }
    let mut taken = Vec::new();
    for d in due {
        if taken.len() >= max {
            break;
        }
        let alert = d.endpoint_id.is_empty();
        let endpoint = per_endpoint.get(d.endpoint_id.as_str()).copied().unwrap_or(0);
        let tenant = if alert { 0 } else { per_tenant.get(d.tenant_id.as_str()).copied().unwrap_or(0) };
        if endpoint >= caps.per_endpoint || tenant >= caps.per_tenant {
            continue;
        }
        *per_endpoint.entry(&d.endpoint_id).or_default() += 1;
        if !alert {
            *per_tenant.entry(&d.tenant_id).or_default() += 1;
        }
        taken.push(d);
    }
    taken
}

/// One more manual send (a test event or a replay) to an endpoint allowed
/// `per_minute` of them: a generic cell rate (a burst of `per_minute`, then
/// one every `60 s / per_minute`). `tat` is the endpoint's theoretical
/// arrival time (`None` before its first). `Ok(new tat)` when allowed,
/// `Err(ms to wait)` when not.
pub fn manual_send(tat: Option<i64>, now: i64, per_minute: u32) -> Result<i64, i64> {
    let per_minute = i64::from(per_minute.max(1));
    let interval = 60_000 / per_minute;
    let next = tat.unwrap_or(now).max(now) + interval;
    let ahead = next - now;
    let burst = interval * per_minute;
    if ahead <= burst {
        Ok(next)
    } else {
        Err(ahead - burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(id: &str, endpoint: &str, tenant: &str) -> DueDelivery {
        DueDelivery { id: id.into(), endpoint_id: endpoint.into(), tenant_id: tenant.into() }
    }

    fn ids(taken: &[&DueDelivery]) -> Vec<String> {
        taken.iter().map(|d| d.id.clone()).collect()
    }

    const CAPS: InFlightCaps = InFlightCaps { per_endpoint: 2, per_tenant: 3 };

    #[test]
    fn a_saturated_endpoint_is_passed_over_and_the_next_endpoint_takes_its_turn() {
        let due = [due("s1", "slow", "a"), due("f1", "fast", "b"), due("s2", "slow", "a"), due("f2", "fast", "b")];
        let busy = [InFlight { endpoint_id: "slow".into(), tenant_id: "a".into(), count: 2 }];
        assert_eq!(ids(&take_in_turn(&due, &busy, CAPS, 10)), ["f1", "f2"]);
        assert_eq!(ids(&take_in_turn(&due, &[], CAPS, 10)), ["s1", "f1", "s2", "f2"]);
        assert_eq!(ids(&take_in_turn(&due, &[], CAPS, 1)), ["s1"]);
    }

    #[test]
    fn a_tenant_is_capped_across_its_endpoints_and_operator_alerts_are_not_its_own() {
        let due = [
            due("a1", "e1", "a"),
            due("b1", "e2", "a"),
            due("c1", "e3", "a"),
            due("alert", "", "a"),
            due("a2", "e1", "a"),
            due("x1", "e9", "b"),
        ];
        let taken =
            take_in_turn(&due, &[InFlight { endpoint_id: "e3".into(), tenant_id: "a".into(), count: 1 }], CAPS, 10);
        assert_eq!(ids(&taken), ["a1", "b1", "alert", "x1"]);
    }

    #[test]
    fn manual_sends_come_in_a_burst_of_the_rate_then_one_per_interval() {
        let mut tat = None;
        for _ in 0..10 {
            tat = Some(manual_send(tat, 1_000, 10).unwrap());
        }
        assert_eq!(manual_send(tat, 1_000, 10), Err(6_000), "the eleventh waits one interval");
        assert_eq!(manual_send(tat, 4_000, 10), Err(3_000));
        assert!(manual_send(tat, 7_000, 10).is_ok(), "an interval later, one more");
        assert!(manual_send(tat, 61_000, 10).is_ok());
    }
}
