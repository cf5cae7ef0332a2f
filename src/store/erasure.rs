//! Erasure of a person's data (GDPR article 17, issue 23; the export's
//! reads are in `person_data`). Erasure removes
//! the person's personal data at one tenant in one transaction and keeps
//! only a keyed hash of the address (`erased_addresses`), which stops that
//! tenant mailing it again: a single send to it is refused, and when it comes
//! back as a contact it is suppressed with reason `erased`.

use sqlx::AnyConnection;

use super::{Backend, Store};
use crate::domain::{ConsentChange, ConsentOrigin, TenantId};

/// What an erasure removed or rewrote, row by row.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErasedCounts {
    /// Messages whose address now reads as its keyed hash (queued ones cancelled).
    pub messages: u64,
    /// Queued or paused messages to the person, cancelled.
    pub messages_cancelled: u64,
    /// Stored delivery events (Resend's payloads) rewritten.
    pub delivery_events: u64,
    /// Outgoing webhook deliveries to the tenant's endpoints rewritten.
    pub webhook_deliveries: u64,
    /// Stored answers of idempotent requests rewritten.
    pub idempotent_answers: u64,
    pub automation_runs: u64,
    pub automation_sends: u64,
    /// Suppressions that held the address in clear (the keyed hash replaces them).
    pub suppressions: u64,
    /// Client details (IP, user agent) beside the person's consent records.
    pub consent_clients: u64,
    /// Link figures and import reports that named the address.
    pub figures_and_reports: u64,
}

/// `col` contains `$param` (lower-case), ignoring case: a plain substring test
/// (LIKE would read `_` and `%` in an address as wildcards).
fn contains(backend: Backend, col: &str, param: &str) -> String {
    match backend {
        Backend::Sqlite => format!("instr(lower({col}), {param}) > 0"),
        Backend::Postgres => format!("strpos(lower({col}), {param}) > 0"),
    }
}

/// `IN (...)` over a JSON array of text bound as `param`.
pub(super) fn json_list(backend: Backend, param: &str) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
        Backend::Postgres => format!("SELECT jsonb_array_elements_text(CAST({param} AS jsonb))"),
    }
}

/// The free-text columns of the tenant's rows that may name an address, and
/// what a value becomes when the address is still in it after replacing it
/// (written in another case than the contact's): `None` for the value with
/// the address replaced in its lower-cased form. The large tables (an event
/// and figures per message) are read through the person's messages only,
/// so that an erasure inside SQLite's one write transaction does not scan
/// every event the tenant ever had.
const NAMING_COLUMNS: [(&str, &str, Option<&str>, Scope); 10] = [
    ("webhook_events", "payload", Some("'{}'"), Scope::TheirMessages),
    ("webhook_events", "link", None, Scope::TheirMessages),
    ("webhook_deliveries", "payload", Some("'{}'"), Scope::Tenant),
    ("webhook_deliveries", "last_error", Some("NULL"), Scope::Tenant),
    ("idempotency_keys", "response_body", Some("'{}'"), Scope::Tenant),
    ("batches", "payload", Some("NULL"), Scope::TheirBatches),
    ("batches", "last_error", Some("NULL"), Scope::TheirBatches),
    ("campaign_links", "link", None, Scope::Tenant),
    ("message_firsts", "kind", None, Scope::TheirMessages),
    ("contact_imports", "errors", Some("'[]'"), Scope::Tenant),
];

/// Which of the tenant's rows a column of [`NAMING_COLUMNS`] is searched in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Tenant,
    /// Rows whose `message_id` is one of the person's messages.
    TheirMessages,
    /// The provider requests (batches) that carried one of the person's messages.
    TheirBatches,
}

/// The contact an erasure is about.
#[derive(Clone, Copy)]
pub(super) struct Person<'a> {
    pub tenant_id: &'a str,
    pub contact_id: &'a str,
    /// The address as written, and normalized.
    pub email: &'a str,
    pub normalized: &'a str,
}

/// What an erasure forgets of a contact.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forget {
    /// A person who asked (GDPR article 17): everything the tenant holds
    /// that names them, their transactional mail by address too, and their
    /// suppressions (kept under the hash).
    Person,
    /// A signup nobody confirmed within the pending days: the contact and
    /// what was sent to it (the confirmation email: its message, request and
    /// events). The tenant's own suppressions of the address stay as they
    /// are, and so does mail the tenant sent the address otherwise.
    Signup,
}

impl Store {
    /// Whether the tenant erased this address (normalized).
    pub async fn is_erased(&self, tenant_id: &TenantId, email_normalized: &str) -> Result<bool, sqlx::Error> {
        let hash = self.address_hash(tenant_id.as_str(), email_normalized);
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM erased_addresses WHERE tenant_id = $1 AND address_hash = $2")
                .bind(tenant_id)
                .bind(hash)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    /// Erases the contact's personal data at the tenant, in one transaction:
    /// its row (names, attributes, tags, topic choices, segment memberships
    /// go with it), its address in messages, events, stored payloads,
    /// idempotent answers, link figures and import reports (replaced by its
    /// keyed hash), its automation runs and sends, its suppressions, and the
    /// client details of its consent records (the records stay, and one
    /// `erased` record naming no one is added). The keyed hash is kept so
    /// the tenant never mails the address again. Figures (campaign and
    /// tenant counters) are not touched. `None` when the tenant has no such
    /// contact.
    pub async fn erase_contact(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        origin: &ConsentOrigin,
    ) -> Result<Option<ErasedCounts>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let found: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT email, email_normalized FROM contacts WHERE tenant_id = $1 AND id = $2{lock}"
        ))
        .bind(tenant_id)
        .bind(contact_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((email, normalized)) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        let hash = self.address_hash(tenant_id.as_str(), &normalized);
        let hidden = crate::domain::erased_address(&hash);
        let person = Person { tenant_id: tenant_id.as_str(), contact_id, email: &email, normalized: &normalized };
        let counts = self.erase_in(&mut tx, &person, &hidden, Forget::Person).await?;
        sqlx::query(
            "INSERT INTO erased_addresses (tenant_id, address_hash, erased_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, address_hash) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(&hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The record of the erasure carries no client: nothing that names the person.
        let origin = ConsentOrigin { client: None, ..origin.clone() };
        super::consent::record(&mut tx, now, tenant_id.as_str(), contact_id, ConsentChange::Erased, None, &origin)
            .await?;
        tx.commit().await?;
        Ok(Some(counts))
    }

    /// Forgets a signup nobody confirmed, inside `tx` (see [`Forget::Signup`]):
    /// the address is replaced by `hidden` (its keyed hash) in what was sent to
    /// it, and the contact row goes.
    pub(super) async fn forget_signup_in(
        &self,
        tx: &mut AnyConnection,
        person: &Person<'_>,
        hidden: &str,
    ) -> Result<(), sqlx::Error> {
        self.erase_in(tx, person, hidden, Forget::Signup).await.map(|_| ())
    }

    async fn erase_in(
        &self,
        tx: &mut AnyConnection,
        person: &Person<'_>,
        hidden: &str,
        what: Forget,
    ) -> Result<ErasedCounts, sqlx::Error> {
        let Person { tenant_id, contact_id, email, normalized } = *person;
        let b = self.backend;
        let mut n = ErasedCounts::default();
        // A pending contact was sent only its confirmation, a transactional
        // email (read through the index of transactional mail by address).
        let which = match what {
            Forget::Person => "(contact_id = $2 OR (campaign_id IS NULL AND lower(to_email) = $3))",
            Forget::Signup => "campaign_id IS NULL AND lower(to_email) = $3 AND contact_id = $2",
        };
        let ids: Vec<String> = sqlx::query_scalar(&format!("SELECT id FROM messages WHERE tenant_id = $1 AND {which}"))
            .bind(tenant_id)
            .bind(contact_id)
            .bind(normalized)
            .fetch_all(&mut *tx)
            .await?;
        let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let mine = json_list(b, "$2");

        // Automation runs about the person's messages or the contact, and
        // the sends that keep a rule from mailing them twice. (A pending
        // contact is mailed by no rule: nothing to forget there.)
        if what == Forget::Person {
            n.automation_runs = sqlx::query(&format!(
                "DELETE FROM automation_runs WHERE tenant_id = $1 AND (contact_id = $3 OR message_id IN ({mine}))"
            ))
            .bind(tenant_id)
            .bind(&ids_json)
            .bind(contact_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            n.automation_sends = sqlx::query(&format!(
            "DELETE FROM automation_sends WHERE automation_id IN (SELECT id FROM automations WHERE tenant_id = $1) \
               AND (contact_key = $3 OR contact_key = $4 OR message_id IN ({mine}))"
        ))
            .bind(tenant_id)
            .bind(&ids_json)
            .bind(contact_id)
            .bind(normalized)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }

        // Mail not sent yet is not sent; the rest keeps its status (the
        // figures count it) with the address replaced and the content that
        // was the person's (names, variables, a transactional body) dropped.
        n.messages_cancelled = sqlx::query(&format!(
            "UPDATE messages SET status = 'cancelled', updated_at = $3 \
             WHERE tenant_id = $1 AND id IN ({mine}) AND status IN ('queued', 'paused')"
        ))
        .bind(tenant_id)
        .bind(&ids_json)
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        n.messages = sqlx::query(&format!(
            "UPDATE messages SET to_email = $3, first_name = NULL, variables = NULL, html = NULL, text_body = NULL, \
               subject = REPLACE(REPLACE(subject, $4, $3), $5, $3), \
               last_error = REPLACE(REPLACE(last_error, $4, $3), $5, $3) \
             WHERE tenant_id = $1 AND id IN ({mine})"
        ))
        .bind(tenant_id)
        .bind(&ids_json)
        .bind(hidden)
        .bind(email)
        .bind(normalized)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // What still names the address in another case.
        for col in ["subject", "last_error"] {
            sqlx::query(&format!(
                "UPDATE messages SET {col} = NULL WHERE tenant_id = $1 AND id IN ({mine}) AND {}",
                contains(b, col, "$3")
            ))
            .bind(tenant_id)
            .bind(&ids_json)
            .bind(normalized)
            .execute(&mut *tx)
            .await?;
        }

        // Stored payloads, answers, figures and reports of the tenant's that
        // name the address: the address replaced by its hash, or, where it
        // is written in another case, the value dropped.
        for (table, col, fallback, scope) in NAMING_COLUMNS {
            if what == Forget::Signup && scope == Scope::Tenant {
                continue;
            }
            // The person's message ids are bound last, as `${ids}`.
            let rows = |ids: usize| match scope {
                Scope::Tenant => String::new(),
                Scope::TheirMessages => format!(" AND message_id IN ({})", json_list(b, &format!("${ids}"))),
                Scope::TheirBatches => format!(
                    " AND id IN (SELECT batch_id FROM messages WHERE id IN ({}) AND batch_id IS NOT NULL)",
                    json_list(b, &format!("${ids}"))
                ),
            };
            let hit = contains(b, col, "$2");
            let sql = format!(
                "UPDATE {table} SET {col} = REPLACE(REPLACE({col}, $3, $4), $2, $4) WHERE tenant_id = $1 AND {hit}{}",
                rows(5)
            );
            let q = sqlx::query(&sql).bind(tenant_id).bind(normalized).bind(email).bind(hidden);
            let q = if scope == Scope::Tenant { q } else { q.bind(&ids_json) };
            let done = q.execute(&mut *tx).await?.rows_affected();
            // PostgreSQL refuses a parameter the statement does not use: the
            // hashed address is bound only where the fallback uses it.
            let (rest, ids_at) = match fallback {
                Some(value) => (value.to_owned(), 3),
                None => (format!("REPLACE(lower({col}), $2, $3)"), 4),
            };
            let sql = format!("UPDATE {table} SET {col} = {rest} WHERE tenant_id = $1 AND {hit}{}", rows(ids_at));
            let q = sqlx::query(&sql).bind(tenant_id).bind(normalized);
            let q = if fallback.is_none() { q.bind(hidden) } else { q };
            let q = if scope == Scope::Tenant { q } else { q.bind(&ids_json) };
            q.execute(&mut *tx).await?;
            match table {
                "webhook_events" if col == "payload" => n.delivery_events = done,
                "webhook_deliveries" if col == "payload" => n.webhook_deliveries = done,
                "idempotency_keys" => n.idempotent_answers = done,
                "campaign_links" | "message_firsts" | "contact_imports" => n.figures_and_reports += done,
                _ => {}
            }
        }
        // The events about the person's messages, whatever their payload says.
        let about_mine: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE tenant_id = $1 AND message_id IN ({mine})"
        ))
        .bind(tenant_id)
        .bind(&ids_json)
        .fetch_one(&mut *tx)
        .await?;
        n.delivery_events = n.delivery_events.max(u64::try_from(about_mine).unwrap_or(0));

        // A suppression keeps its reason, source and time under the hashed
        // address (a person's erasure; an unconfirmed signup leaves the
        // tenant's list as it is): the campaign's and the tenant's unsubscribe figures are
        // counted from these rows. (One kept from an earlier erasure of the
        // same address already stands for it.)
        if what == Forget::Person {
            n.suppressions = sqlx::query(
            "UPDATE suppressions SET email_normalized = $3 WHERE tenant_id = $1 AND email_normalized = $2                AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = $1 AND s.email_normalized = $3)",
        )
        .bind(tenant_id)
        .bind(normalized)
        .bind(hidden)
        .execute(&mut *tx)
        .await?
        .rows_affected();
            n.suppressions += sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2")
                .bind(tenant_id)
                .bind(normalized)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        n.consent_clients = sqlx::query(
            "DELETE FROM consent_clients WHERE record_id IN \
               (SELECT id FROM consent_records WHERE tenant_id = $1 AND contact_id = $2)",
        )
        .bind(tenant_id)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // An import's note about the source of consent may name the person.
        sqlx::query(&format!(
            "UPDATE consent_records SET source_note = NULL WHERE tenant_id = $1 AND contact_id = $3 AND {}",
            contains(b, "source_note", "$2")
        ))
        .bind(tenant_id)
        .bind(normalized)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?;
        // Tags, topic choices and segment memberships go with the row (ON DELETE CASCADE).
        sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(contact_id)
            .execute(&mut *tx)
            .await?;
        Ok(n)
    }
}

/// Suppresses (reason `erased`) those of these addresses (normalized) that
/// the tenant erased before: called where an address becomes a contact
/// again, in that write's transaction. Costs one indexed probe when the
/// tenant never erased anyone.
pub(super) async fn suppress_erased(
    store: &Store,
    tx: &mut AnyConnection,
    now: i64,
    tenant_id: &str,
    emails: &[&str],
) -> Result<u64, sqlx::Error> {
    if emails.is_empty() {
        return Ok(0);
    }
    let any: Option<i64> = sqlx::query_scalar("SELECT erased_at FROM erased_addresses WHERE tenant_id = $1 LIMIT 1")
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
    if any.is_none() {
        return Ok(0);
    }
    let hashed: Vec<(String, &str)> = emails.iter().map(|e| (store.address_hash(tenant_id, e), *e)).collect();
    let hashes = serde_json::to_string(&hashed.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    let found: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT address_hash FROM erased_addresses WHERE tenant_id = $1 AND address_hash IN ({})",
        json_list(store.backend, "$2")
    ))
    .bind(tenant_id)
    .bind(hashes)
    .fetch_all(&mut *tx)
    .await?;
    let mut added = 0;
    for (hash, email) in &hashed {
        if !found.contains(hash) {
            continue;
        }
        added += sqlx::query(
            "INSERT INTO suppressions (tenant_id, email_normalized, reason, source, created_at) \
             VALUES ($1, $2, 'erased', 'erasure', $3) ON CONFLICT (tenant_id, email_normalized) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(*email)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    Ok(added)
}
