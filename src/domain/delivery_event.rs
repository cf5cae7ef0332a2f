//! Delivery events (Resend -> mailroom) and what applying a group of them
//! does: [`plan`] decides, without a database, which events count, which
//! messages move forward, which addresses are suppressed and why, which events
//! tenants are notified of, which may trigger automations, which contacts'
//! soft bounces are counted and which figures are recorded. The store then
//! writes the plan in the events' one transaction.

use std::collections::{BTreeMap, HashSet};

use sqlx::FromRow;

use super::{is_tenant_event_type, MessageStatus};

/// A delivery event, already verified and parsed, as the store applies it.
#[derive(Clone, Debug)]
pub struct IncomingEvent {
    pub svix_id: String,
    pub event_type: String,
    /// `data.email_id`: the provider's id for the message.
    pub provider_email_id: Option<String>,
    /// `data.tags.message`: mailroom's own id, which it put on every email, so an
    /// event that outruns the recording of the provider id still finds its row.
    pub message_tag: Option<String>,
    /// The message status this event moves to, if it moves one.
    pub new_status: Option<MessageStatus>,
    /// `bounced` or `complained` when the recipient must be suppressed.
    pub suppress: Option<&'static str>,
    pub payload: String,
    /// The event's own time (the envelope's `created_at`), epoch ms.
    pub occurred_at: Option<i64>,
    /// `data.click.link` of a click.
    pub link: Option<String>,
    /// `data.bounce.type` of a bounce: `Permanent`, `Transient` or `Undetermined`.
    pub bounce_type: Option<String>,
    /// A `domain.*` event: the provider's domain id and its new status.
    pub domain: Option<DomainChange>,
}

impl IncomingEvent {
    /// A hard bounce or a complaint: what can move a tenant's reputation up.
    pub fn hurts_reputation(&self) -> bool {
        match self.event_type.as_str() {
            "email.complained" => true,
            "email.bounced" => self.bounce_type.as_deref() == Some("Permanent"),
            _ => false,
        }
    }
}

/// A `domain.created|updated|deleted` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainChange {
    pub resend_domain_id: String,
    pub status: String,
}

/// Domain statuses that hold a tenant's campaign sending (with an alert in the log).
pub const DOMAIN_TROUBLE: [&str; 3] = ["temporary_failure", "failed", "deleted"];

/// What became of one event of a group.
#[derive(Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Stored for the first time (and applied to its message if one matched).
    Applied { message_found: bool },
    /// This svix-id was stored before; nothing was done.
    Duplicate,
}

/// The message an event applies to.
#[derive(Clone, Debug, FromRow)]
pub struct EventTarget {
    pub id: String,
    pub tenant_id: String,
    pub to_email: String,
    pub campaign_id: Option<String>,
    /// The message's contact, else the tenant's contact with its address.
    pub contact_id: Option<String>,
    /// 1: a test send's message, counted in no figure.
    pub test: i64,
}

impl EventTarget {
    /// The tenant whose message it is.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
}

/// An event applied to its message.
pub type Applied<'a> = (&'a IncomingEvent, &'a EventTarget);

/// A message moved forward: to the highest-ranked status among the group's
/// events about it, with the first provider id they carry.
#[derive(Debug, PartialEq, Eq)]
pub struct StatusMove<'a> {
    pub message_id: &'a str,
    pub status: MessageStatus,
    pub provider_id: Option<&'a str>,
}

/// An address suppressed for a tenant (lower-cased), with the reason and the
/// message whose event suppressed it.
#[derive(Debug, PartialEq, Eq)]
pub struct SuppressionHit<'a> {
    pub tenant_id: &'a str,
    pub email: String,
    pub reason: &'a str,
    pub source: &'a str,
}

/// A contact that bounced softly in the group (its recent soft bounces are
/// counted against the limit), with the first message that bounced.
#[derive(Debug)]
pub struct SoftBounce<'a> {
    pub tenant_id: &'a str,
    pub contact_id: &'a str,
    pub target: &'a EventTarget,
}

/// A figure an event counts once per message (`sent`, `delivered`, `link:…`).
#[derive(Debug)]
pub struct Figure<'a> {
    pub target: &'a EventTarget,
    pub kind: String,
    pub at: i64,
}

/// What applying a group of events does, decided before any of it is written.
#[derive(Debug)]
pub struct EventPlan<'a> {
    /// One per event, in order.
    pub outcomes: Vec<EventOutcome>,
    /// The events applied (new, and about a known message), in order.
    pub applied: Vec<Applied<'a>>,
    /// Messages moved forward, by message id.
    pub moves: Vec<StatusMove<'a>>,
    /// Hard bounces and complaints, one per address: a complaint outranks a bounce.
    pub suppressions: Vec<SuppressionHit<'a>>,
    /// Tenants that may be notified (they had an `email.*` event of a type
    /// endpoints subscribe to), sorted; with none, no endpoint is looked up.
    pub notify_tenants: Vec<&'a str>,
    /// Applied events of those tenants, of a type endpoints subscribe to.
    pub notifications: Vec<Applied<'a>>,
    /// Tenants with an event that can trigger an automation, sorted.
    pub trigger_tenants: Vec<&'a str>,
    /// Contacts whose soft bounces are counted, by (tenant, contact).
    pub soft_bounces: Vec<SoftBounce<'a>>,
    /// Figures counted once per message.
    pub figures: Vec<Figure<'a>>,
    /// New `domain.*` events, in order.
    pub domain_changes: Vec<&'a IncomingEvent>,
}

/// Decides what a group of events does. `stored`: the svix ids the group's
/// insert stored (new ones); an event counts when it was stored, and only its
/// first copy in the group. `now`: the group's time (for events without one).
pub fn plan<'a>(
    events: &'a [(&'a IncomingEvent, Option<EventTarget>)],
    stored: &HashSet<String>,
    now: i64,
) -> EventPlan<'a> {
    let mut seen = HashSet::new();
    let mut outcomes = Vec::with_capacity(events.len());
    let mut applied: Vec<Applied<'a>> = Vec::new();
    let mut domain_changes = Vec::new();
    for (e, target) in events {
        if !stored.contains(&e.svix_id) || !seen.insert(e.svix_id.as_str()) {
            outcomes.push(EventOutcome::Duplicate);
            continue;
        }
        outcomes.push(EventOutcome::Applied { message_found: target.is_some() });
        if let Some(m) = target {
            applied.push((*e, m));
        }
        if e.domain.is_some() {
            domain_changes.push(*e);
        }
    }
    let notify_tenants = sorted_tenants(
        applied.iter().filter(|(e, _)| e.event_type.starts_with("email.") && is_tenant_event_type(&e.event_type)),
    );
    let notifications = applied
        .iter()
        .filter(|(e, m)| notify_tenants.contains(&m.tenant_id.as_str()) && is_tenant_event_type(&e.event_type))
        .copied()
        .collect();
    let trigger_tenants = sorted_tenants(
        applied.iter().filter(|(e, _)| super::automation::TRIGGER_EVENTS.contains(&e.event_type.as_str())),
    );
    EventPlan {
        outcomes,
        moves: moves(&applied),
        suppressions: suppressions(&applied),
        notify_tenants,
        notifications,
        trigger_tenants,
        soft_bounces: soft_bounces(&applied),
        figures: figures(&applied, now),
        domain_changes,
        applied,
    }
}

fn sorted_tenants<'a, 'b>(applied: impl Iterator<Item = &'b Applied<'a>>) -> Vec<&'a str>
where
    'a: 'b,
{
    let mut tenants: Vec<&str> = applied.map(|(_, m)| m.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    tenants
}

/// Each message to the highest-ranked status among its events (the store
/// moves it only forward, in SQL, so concurrent writers cannot move it back).
fn moves<'a>(applied: &[Applied<'a>]) -> Vec<StatusMove<'a>> {
    let mut best: BTreeMap<&str, (MessageStatus, Option<&str>)> = BTreeMap::new();
    for (e, m) in applied {
        let Some(status) = e.new_status else { continue };
        let entry = best.entry(m.id.as_str()).or_insert((status, None));
        if status.rank() > entry.0.rank() {
            entry.0 = status;
        }
        if entry.1.is_none() {
            entry.1 = e.provider_email_id.as_deref();
        }
    }
    best.into_iter().map(|(message_id, (status, provider_id))| StatusMove { message_id, status, provider_id }).collect()
}

/// One row per address (a statement may not upsert the same row twice): the
/// complaint if there is one, else the first bounce.
fn suppressions<'a>(applied: &[Applied<'a>]) -> Vec<SuppressionHit<'a>> {
    let mut by_address: BTreeMap<(&str, String), (&str, &str)> = BTreeMap::new();
    for (e, m) in applied {
        let Some(reason) = e.suppress else { continue };
        let entry = by_address.entry((m.tenant_id.as_str(), m.to_email.to_lowercase())).or_insert((reason, &m.id));
        if reason == "complained" && entry.0 != "complained" {
            *entry = (reason, &m.id);
        }
    }
    by_address
        .into_iter()
        .map(|((tenant_id, email), (reason, source))| SuppressionHit { tenant_id, email, reason, source })
        .collect()
}

/// Contacts with a `Transient` bounce in the group, each once.
fn soft_bounces<'a>(applied: &[Applied<'a>]) -> Vec<SoftBounce<'a>> {
    let mut contacts: BTreeMap<(&str, &str), &EventTarget> = BTreeMap::new();
    for (e, m) in applied {
        if let (Some("Transient"), Some(contact)) = (e.bounce_type.as_deref(), m.contact_id.as_deref()) {
            contacts.entry((m.tenant_id.as_str(), contact)).or_insert(m);
        }
    }
    contacts.into_iter().map(|((tenant_id, contact_id), target)| SoftBounce { tenant_id, contact_id, target }).collect()
}

fn figures<'a>(applied: &[Applied<'a>], now: i64) -> Vec<Figure<'a>> {
    applied
        .iter()
        .flat_map(|(e, m)| {
            let at = e.occurred_at.unwrap_or(now);
            // A test send is for the sender's eyes: no campaign's or tenant's figure.
            let kinds = if m.test == 1 { Vec::new() } else { event_figures(e) };
            kinds.into_iter().map(move |kind| Figure { target: m, kind, at })
        })
        .collect()
}

/// The figures an event may count once per message: `sent` for anything the
/// provider reports about an email (it accepted it), and the event's own.
pub fn event_figures(e: &IncomingEvent) -> Vec<String> {
    let Some(kind) = e.event_type.strip_prefix("email.") else { return Vec::new() };
    let own: &[&str] = match kind {
        "delivered" => &["delivered"],
        "delivery_delayed" => &["delivery_delayed"],
        "opened" => &["opened"],
        "clicked" => &["clicked"],
        "complained" => &["complained"],
        "failed" => &["failed"],
        "suppressed" => &["suppressed"],
        "bounced" if e.bounce_type.as_deref() == Some("Permanent") => &["bounced", "bounced_hard"],
        "bounced" => &["bounced", "bounced_soft"],
        "sent" | "scheduled" => &[],
        _ => return Vec::new(),
    };
    let mut figures: Vec<String> = std::iter::once("sent").chain(own.iter().copied()).map(str::to_owned).collect();
    if let (true, Some(link)) = (kind == "clicked", &e.link) {
        figures.push(format!("link:{link}"));
    }
    figures
}

/// What a tenant's endpoint learns of a delivery event: mailroom's own ids
/// (never the provider's), and the click link, bounce or failure where present.
pub fn tenant_event_data(e: &IncomingEvent, m: &EventTarget) -> serde_json::Value {
    let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap_or_default();
    let data = &payload["data"];
    let created_at = payload["created_at"].as_str().or_else(|| data["created_at"].as_str());
    let mut out = serde_json::json!({
        "email_id": m.id,
        "campaign_id": m.campaign_id,
        "to": m.to_email,
        "created_at": created_at,
    });
    if let Some(link) = data["click"]["link"].as_str() {
        out["click"] = serde_json::json!({ "link": link });
    }
    if data["bounce"].is_object() {
        out["bounce"] = serde_json::json!({ "type": data["bounce"]["type"], "subType": data["bounce"]["subType"] });
    }
    if let Some(reason) = data["failed"]["reason"].as_str() {
        out["failed"] = serde_json::json!({ "reason": reason });
    }
    out
}

/// An enabled automation rule's trigger, as event ingestion matches it.
#[derive(Clone, Debug, FromRow)]
pub struct RuleTrigger {
    pub id: String,
    pub tenant_id: String,
    pub trigger_event: String,
    pub trigger_campaign: Option<String>,
    pub trigger_link: Option<String>,
    pub wait_ms: i64,
    /// The whole rule, as stored (JSON).
    pub definition: String,
}

/// A run a rule's trigger fired: the rule, the event and its message, and when it is due.
#[derive(Debug)]
pub struct TriggeredRun<'a> {
    pub rule: &'a RuleTrigger,
    pub event: &'a IncomingEvent,
    pub target: &'a EventTarget,
    pub due_at: i64,
}

/// Which rules each applied event fires (same tenant, event type, and the
/// campaign and link when the rule names them), event by event. A rule that
/// waits is due that long after the event (or now, for an event older than the
/// wait); the others now.
pub fn triggered_runs<'a>(applied: &[Applied<'a>], rules: &'a [RuleTrigger], now: i64) -> Vec<TriggeredRun<'a>> {
    let mut runs = Vec::new();
    for (e, m) in applied {
        for r in rules {
            let fits = r.tenant_id == m.tenant_id
                && r.trigger_event == e.event_type
                && r.trigger_campaign.as_ref().map_or(true, |c| m.campaign_id.as_ref() == Some(c))
                && r.trigger_link.as_ref().map_or(true, |l| e.link.as_ref() == Some(l));
            if fits {
                let due_at =
                    if r.wait_ms > 0 { e.occurred_at.unwrap_or(now).max(now - r.wait_ms) + r.wait_ms } else { now };
                runs.push(TriggeredRun { rule: r, event: e, target: m, due_at });
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(svix_id: &str, event_type: &str) -> IncomingEvent {
        IncomingEvent {
            svix_id: svix_id.into(),
            event_type: event_type.into(),
            provider_email_id: Some(format!("p-{svix_id}")),
            message_tag: None,
            new_status: None,
            suppress: None,
            payload: "{}".into(),
            occurred_at: None,
            link: None,
            bounce_type: None,
            domain: None,
        }
    }

    fn target(id: &str, tenant: &str, email: &str) -> EventTarget {
        EventTarget {
            id: id.into(),
            tenant_id: tenant.into(),
            to_email: email.into(),
            campaign_id: Some("c".into()),
            contact_id: Some(format!("contact-{email}")),
            test: 0,
        }
    }

    fn stored(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_first_stored_copy_of_an_event_applies() {
        let (a, b) = (event("a", "email.delivered"), event("b", "email.opened"));
        let events = vec![(&a, Some(target("m1", "t", "x@y.z"))), (&a, Some(target("m1", "t", "x@y.z"))), (&b, None)];
        let plan = plan(&events, &stored(&["a", "b"]), 0);
        assert_eq!(
            plan.outcomes,
            vec![
                EventOutcome::Applied { message_found: true },
                EventOutcome::Duplicate,
                EventOutcome::Applied { message_found: false }
            ]
        );
        assert_eq!(plan.applied.len(), 1);
        let plan = super::plan(&events, &stored(&[]), 0);
        assert!(plan.outcomes.iter().all(|o| *o == EventOutcome::Duplicate));
    }

    #[test]
    fn a_message_moves_to_its_highest_ranked_status() {
        let mut delivered = event("a", "email.delivered");
        delivered.new_status = Some(MessageStatus::Delivered);
        let mut bounced = event("b", "email.bounced");
        bounced.new_status = Some(MessageStatus::Bounced);
        let events = vec![(&bounced, Some(target("m1", "t", "x@y.z"))), (&delivered, Some(target("m1", "t", "x@y.z")))];
        let plan = plan(&events, &stored(&["a", "b"]), 0);
        let top = if MessageStatus::Bounced.rank() >= MessageStatus::Delivered.rank() {
            MessageStatus::Bounced
        } else {
            MessageStatus::Delivered
        };
        assert_eq!(plan.moves, vec![StatusMove { message_id: "m1", status: top, provider_id: Some("p-b") }]);
    }

    #[test]
    fn a_complaint_outranks_a_bounce_of_the_same_address() {
        let mut bounce = event("a", "email.bounced");
        bounce.suppress = Some("bounced");
        let mut complaint = event("b", "email.complained");
        complaint.suppress = Some("complained");
        let events = vec![(&bounce, Some(target("m1", "t", "X@Y.z"))), (&complaint, Some(target("m2", "t", "x@y.z")))];
        let plan = plan(&events, &stored(&["a", "b"]), 0);
        assert_eq!(
            plan.suppressions,
            vec![SuppressionHit { tenant_id: "t", email: "x@y.z".into(), reason: "complained", source: "m2" }]
        );
    }

    #[test]
    fn tenants_are_notified_of_their_email_events_only() {
        let (a, d) = (event("a", "email.opened"), event("d", "domain.updated"));
        let events = vec![(&a, Some(target("m1", "t2", "x@y.z"))), (&d, Some(target("m2", "t1", "x@y.z")))];
        let plan = plan(&events, &stored(&["a", "d"]), 0);
        assert_eq!(plan.notify_tenants, vec!["t2"]);
        assert_eq!(plan.notifications.len(), 1);
        assert_eq!(plan.trigger_tenants, vec!["t2"]);
    }

    #[test]
    fn soft_bounces_are_counted_once_per_contact() {
        let mut a = event("a", "email.bounced");
        a.bounce_type = Some("Transient".into());
        let mut b = a.clone();
        b.svix_id = "b".into();
        let events = vec![(&a, Some(target("m1", "t", "x@y.z"))), (&b, Some(target("m2", "t", "x@y.z")))];
        let plan = plan(&events, &stored(&["a", "b"]), 0);
        assert_eq!(plan.soft_bounces.len(), 1);
        assert_eq!(plan.soft_bounces[0].target.id, "m1");
        let kinds: Vec<&str> = plan.figures.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, vec!["sent", "bounced", "bounced_soft", "sent", "bounced", "bounced_soft"]);
    }

    #[test]
    fn a_test_sends_events_count_in_no_figure() {
        let delivered = event("a", "email.delivered");
        let mut test = target("m1", "t", "x@y.z");
        test.test = 1;
        let plan_of = |m: EventTarget| plan(&[(&delivered, Some(m))], &stored(&["a"]), 0).figures.len();
        assert_eq!(plan_of(test), 0);
        assert_eq!(plan_of(target("m1", "t", "x@y.z")), 2, "sent and delivered, for real mail");
    }

    #[test]
    fn a_rule_fires_for_its_tenant_event_campaign_and_link_and_waits_from_the_event() {
        let mut click = event("a", "email.clicked");
        click.link = Some("https://x".into());
        click.occurred_at = Some(1_000);
        let m = target("m1", "t", "x@y.z");
        let applied = vec![(&click, &m)];
        let rule = |id: &str, link: Option<&str>, wait_ms| RuleTrigger {
            id: id.into(),
            tenant_id: "t".into(),
            trigger_event: "email.clicked".into(),
            trigger_campaign: Some("c".into()),
            trigger_link: link.map(str::to_owned),
            wait_ms,
            definition: String::new(),
        };
        let rules = vec![rule("r1", Some("https://x"), 500), rule("r2", Some("https://other"), 0), rule("r3", None, 0)];
        let runs = triggered_runs(&applied, &rules, 2_000);
        let fired: Vec<(&str, i64)> = runs.iter().map(|r| (r.rule.id.as_str(), r.due_at)).collect();
        assert_eq!(fired, vec![("r1", 2_000), ("r3", 2_000)]);
        let runs = triggered_runs(&applied, &rules, 1_200);
        assert_eq!(runs[0].due_at, 1_500);
    }
}
