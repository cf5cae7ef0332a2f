//! Rules' local actions carried out by event ingestion, in the events'
//! transaction (issue 21): what they act on is read in a few statements for
//! the whole group, [`effects::carry_out`] decides, and each kind of effect is
//! written in one statement (tags added, tags removed, contacts' tag lists,
//! suppressions, alerts), beside the firings' runs.

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use super::super::suppressions::{record_suppressed, write_suppressions, Existing, NewSuppression};
use super::super::tenant_webhooks::{enabled_endpoints, insert_deliveries, webhook_body, QueuedDelivery};
use super::super::{native_sql, Placeholders};
use crate::domain::automation::effects::{self, normalized, ContactTags, Effects, Firing, World};
use crate::domain::automation::{Action, Rule};
use crate::domain::delivery_event::TriggeredRun;
use crate::domain::new_id;

/// Most rows one statement writes (a run has 15 parameters).
const CHUNK: usize = 500;

/// Carries out `runs` (of rules with inline actions, [`Rule::inline_actions`];
/// `rules`: their definitions by id). Each firing's run is written with its
/// outcome, once per (rule, message, event type): a firing whose run exists
/// already (the same email's second open) does nothing, and the others are
/// decided again without it.
pub(super) async fn carry_out(
    tx: &mut AnyConnection,
    runs: &[&TriggeredRun<'_>],
    rules: &HashMap<&str, Option<Rule>>,
    suppressed_now: &[(&str, &str)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut once = HashSet::new();
    let runs: Vec<&TriggeredRun> = runs
        .iter()
        .copied()
        .filter(|r| once.insert((r.rule.id.as_str(), r.target.id.as_str(), r.event.event_type.as_str())))
        .collect();
    let ids: Vec<String> = runs.iter().map(|_| new_id()).collect();
    let mut fired: Vec<(&TriggeredRun, Firing)> = Vec::with_capacity(runs.len());
    for (r, id) in runs.iter().zip(&ids) {
        let Some(rule) = rules.get(r.rule.id.as_str()).and_then(Option::as_ref) else { continue };
        let firing = Firing {
            run_id: id,
            rule_id: &r.rule.id,
            rule,
            tenant_id: &r.target.tenant_id,
            message_id: &r.target.id,
            event_type: &r.event.event_type,
            campaign_id: r.target.campaign_id.as_deref(),
            contact_id: r.target.contact_id.as_deref(),
            link: r.event.link.as_deref(),
            to_email: &r.target.to_email,
        };
        fired.push((r, firing));
    }
    if fired.is_empty() {
        return Ok(());
    }
    let firings: Vec<&Firing> = fired.iter().map(|(_, f)| f).collect();
    let contacts = contact_tags(tx, &firings).await?;
    let suppressed = suppressed(tx, &firings, suppressed_now).await?;
    let endpoints = alert_endpoints(tx, &firings).await?;
    let mut alert_counts: HashMap<String, usize> = HashMap::new();
    for e in &endpoints {
        *alert_counts.entry(e.tenant_id.clone()).or_default() += 1;
    }
    let world = World { contacts: &contacts, suppressed: &suppressed, alert_endpoints: &alert_counts, now };
    let decide = |fired: &[(&TriggeredRun, Firing)]| {
        let firings: Vec<Firing> = fired.iter().map(|(_, f)| f.clone()).collect();
        effects::carry_out(&firings, &world)
    };
    let mut fx = decide(&fired);
    let written = insert_runs(tx, &fired, &fx, now).await?;
    if written.len() < fired.len() {
        // Some fired before (another event of the same type about the same
        // email): only the new ones act, and they are decided without the others.
        fired.retain(|(_, f)| written.contains(f.run_id));
        fx = decide(&fired);
        update_runs(tx, &fired, &fx).await?;
    }
    write_tags(tx, &fx, now).await?;
    let rows: Vec<NewSuppression> = fx
        .suppressions
        .iter()
        .map(|(tenant_id, email)| NewSuppression { tenant_id, email, reason: "automation", source: "automation" })
        .collect();
    record_suppressed(tx, &rows, crate::domain::ConsentSource::Automation, now).await?;
    write_suppressions(tx, &rows, Existing::Keep, now).await?;
    let mut deliveries = Vec::new();
    for a in &fx.alerts {
        let body = webhook_body("automation.alert", &a.data, now);
        for e in endpoints.iter().filter(|e| e.tenant_id == a.tenant_id) {
            deliveries.push(QueuedDelivery {
                endpoint_id: &e.id,
                tenant_id: &a.tenant_id,
                event_type: "automation.alert",
                payload: body.clone(),
            });
        }
    }
    insert_deliveries(tx, &deliveries, now).await.map(|_| ())
}

/// The firings' contacts whose tags a firing reads or changes, locked (on
/// PostgreSQL) until the events commit, in id order.
async fn contact_tags(
    tx: &mut AnyConnection,
    firings: &[&Firing<'_>],
) -> Result<HashMap<String, ContactTags>, sqlx::Error> {
    let mut ids: Vec<&str> = firings
        .iter()
        .filter(|f| {
            f.rule.trigger.tag.is_some()
                || f.rule.actions[..f.rule.inline_actions()]
                    .iter()
                    .any(|a| matches!(a, Action::AddTag { .. } | Action::RemoveTag { .. }))
        })
        .filter_map(|f| f.contact_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = if tx.backend_name().eq_ignore_ascii_case("postgresql") { " ORDER BY id FOR UPDATE" } else { "" };
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "SELECT id, tenant_id, tags FROM contacts WHERE id IN ({}){lock}",
            Placeholders::after(0).list(chunk.len())
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for (id, tenant_id, tags) in q.fetch_all(&mut *tx).await? {
            found.insert(id, ContactTags { tenant_id, tags: serde_json::from_str(&tags).unwrap_or_default() });
        }
    }
    Ok(found)
}

/// Which of the addresses the firings would suppress are suppressed already:
/// those the group's events suppressed (`known`, the common case of a rule on
/// bounces or complaints), and those read.
async fn suppressed(
    tx: &mut AnyConnection,
    firings: &[&Firing<'_>],
    known: &[(&str, &str)],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut found: HashSet<(String, String)> = HashSet::new();
    let mut wanted: Vec<(&str, String)> = Vec::new();
    for f in firings {
        if f.rule.actions[..f.rule.inline_actions()].iter().any(|a| matches!(a, Action::Suppress {})) {
            let email = normalized(f.to_email);
            if known.contains(&(f.tenant_id, email.as_str())) {
                found.insert((f.tenant_id.to_owned(), email));
            } else {
                wanted.push((f.tenant_id, email));
            }
        }
    }
    wanted.sort_unstable();
    wanted.dedup();
    for chunk in wanted.chunks(CHUNK) {
        // A join, not `(a, b) IN (VALUES …)`, which SQLite answers with a scan.
        let sql = format!(
            "SELECT s.tenant_id, s.email_normalized FROM {} v JOIN suppressions s \
               ON s.tenant_id = v.tenant_id AND s.email_normalized = v.email",
            Placeholders::after(0).rows(chunk.len(), &["tenant_id", "email"])
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query_as::<_, (String, String)>(&sql);
        for (tenant, email) in chunk {
            q = q.bind(*tenant).bind(email);
        }
        found.extend(q.fetch_all(&mut *tx).await?);
    }
    Ok(found)
}

/// The enabled endpoints subscribed to `automation.alert` of the tenants of
/// firings that notify.
async fn alert_endpoints(
    tx: &mut AnyConnection,
    firings: &[&Firing<'_>],
) -> Result<Vec<super::super::tenant_webhooks::Subscription>, sqlx::Error> {
    let mut tenants: Vec<&str> = firings
        .iter()
        .filter(|f| f.rule.actions[..f.rule.inline_actions()].iter().any(|a| matches!(a, Action::Notify { .. })))
        .map(|f| f.tenant_id)
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut endpoints = enabled_endpoints(tx, &tenants).await?;
    endpoints.retain(|e| e.subscribes_to("automation.alert"));
    Ok(endpoints)
}

/// Writes the firings' runs as `fx` ends them; returns the ids of those
/// written (not those whose rule had fired for this email and event type).
/// Counted, not returned row by row: all of them, but for a repeat, which is
/// then looked up.
async fn insert_runs(
    tx: &mut AnyConnection,
    fired: &[(&TriggeredRun<'_>, Firing<'_>)],
    fx: &Effects,
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    let mut inserted = 0;
    let all: Vec<_> = fired.iter().zip(&fx.runs).collect();
    for chunk in all.chunks(CHUNK) {
        // Every parameter once, in order (`now` bound per row): see `native_sql`.
        let mut p = Placeholders::after(0);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(15))).collect();
        let sql = format!(
            "INSERT INTO automation_runs (id, automation_id, tenant_id, message_id, event_type, svix_id, campaign_id, \
               contact_id, link, due_at, status, step, log, created_at, updated_at) VALUES {} \
             ON CONFLICT (automation_id, message_id, event_type) DO NOTHING",
            rows.join(", ")
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql);
        for ((r, f), end) in chunk {
            q = q
                .bind(f.run_id)
                .bind(f.rule_id)
                .bind(f.tenant_id)
                .bind(f.message_id)
                .bind(f.event_type)
                .bind(&r.event.svix_id)
                .bind(f.campaign_id)
                .bind(f.contact_id)
                .bind(f.link)
                .bind(now)
                .bind(end.status)
                .bind(end.step)
                .bind(&end.log)
                .bind(now)
                .bind(now);
        }
        inserted += q.execute(&mut *tx).await?.rows_affected();
    }
    let ids: Vec<&str> = fired.iter().map(|(_, f)| f.run_id).collect();
    if usize::try_from(inserted).is_ok_and(|n| n == ids.len()) {
        return Ok(ids.into_iter().map(str::to_owned).collect());
    }
    let mut written = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!("SELECT id FROM automation_runs WHERE id IN ({})", Placeholders::after(0).list(chunk.len()));
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        written.extend(q.fetch_all(&mut *tx).await?);
    }
    Ok(written)
}

/// Rewrites the runs' ends after they were decided again.
async fn update_runs(
    tx: &mut AnyConnection,
    fired: &[(&TriggeredRun<'_>, Firing<'_>)],
    fx: &Effects,
) -> Result<(), sqlx::Error> {
    let all: Vec<_> = fired.iter().zip(&fx.runs).collect();
    for chunk in all.chunks(CHUNK) {
        let sql = format!(
            "UPDATE automation_runs SET status = v.status, step = v.step, log = v.log FROM {} v \
             WHERE automation_runs.id = v.id",
            Placeholders::after(0).rows(chunk.len(), &["id", "status", "step", "log"])
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql);
        for ((_, f), end) in chunk {
            q = q.bind(f.run_id).bind(end.status).bind(end.step).bind(&end.log);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// The contacts' tags: the tags added, the tags removed, and each contact's
/// list, in one statement each (the counts per tag follow `contact_tags`).
async fn write_tags(tx: &mut AnyConnection, fx: &Effects, now: i64) -> Result<(), sqlx::Error> {
    let added: Vec<(&str, &str, &str)> = fx
        .tags
        .iter()
        .flat_map(|c| c.added.iter().map(move |t| (c.tenant_id.as_str(), c.contact_id.as_str(), t.as_str())))
        .collect();
    for chunk in added.chunks(CHUNK) {
        let mut p = Placeholders::after(0);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(3))).collect();
        let sql = format!(
            "INSERT INTO contact_tags (tenant_id, contact_id, tag) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql);
        for (tenant, contact, tag) in chunk {
            q = q.bind(*tenant).bind(*contact).bind(*tag);
        }
        q.execute(&mut *tx).await?;
    }
    let removed: Vec<(&str, &str)> =
        fx.tags.iter().flat_map(|c| c.removed.iter().map(move |t| (c.contact_id.as_str(), t.as_str()))).collect();
    for chunk in removed.chunks(200) {
        // Pairs in an OR (each an index search; 200 at most, within SQLite's expression depth), not
        // `(a, b) IN (VALUES …)`, which SQLite answers with a scan.
        let mut p = Placeholders::after(0);
        let pairs: Vec<String> =
            chunk.iter().map(|_| format!("(contact_id = {} AND tag = {})", p.next(), p.next())).collect();
        let sql = format!("DELETE FROM contact_tags WHERE {}", pairs.join(" OR "));
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql);
        for (contact, tag) in chunk {
            q = q.bind(*contact).bind(*tag);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in fx.tags.chunks(CHUNK) {
        let sql = format!(
            "UPDATE contacts SET tags = v.tags, updated_at = $1 FROM {} v \
             WHERE contacts.id = v.id AND contacts.tenant_id = v.tenant_id",
            Placeholders::after(1).rows(chunk.len(), &["id", "tenant_id", "tags"])
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql).bind(now);
        for c in chunk {
            q = q.bind(&c.contact_id).bind(&c.tenant_id).bind(&c.tags);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}
