//! Bulk import of contacts: a chunk of rows written in one transaction by a few
//! multi-row statements (no round trip per row), and contact export read in
//! keyset pages.

use std::collections::{HashMap, HashSet};

use super::contacts::CONTACT_COLUMNS;
use super::import_topics::placeholders;
use super::{Backend, ContactRow, Store};
use crate::domain::{new_id, Attributes, Tag, TenantId, TopicState};

/// What an import does with an address the tenant already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// Leave the stored contact alone (counted as skipped).
    #[default]
    Skip,
    /// Merge the row into it: names given replace, attributes merge key by key,
    /// tags are added. Its status never changes.
    Update,
}

impl OnConflict {
    /// As the API spells it: `skip` or `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Skip => "skip",
            OnConflict::Update => "update",
        }
    }
}

/// One checked row of an import.
#[derive(Clone, Debug)]
pub struct ImportRow {
    /// Where the row came from (1-based line of the file, or position in a JSON list), for reports.
    pub line: u64,
    pub email: String,
    pub email_normalized: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<Tag>,
    pub attributes: Attributes,
    /// When the person consented (epoch ms; the import's time when absent):
    /// the `at` of the new contact's `imported` consent record.
    pub consented_at: Option<i64>,
    /// Where they consented, in the tenant's words: the record's `source_note`.
    pub consent_source: Option<String>,
    /// The contact's choices on topics: (topic id, state), each topic once.
    pub topics: Vec<(String, TopicState)>,
}

#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    /// Rows refused while merging into a stored contact: (line, reason).
    pub rejected: Vec<(u64, String)>,
}

/// Rows per group (a few reads, then the writes of the group). PostgreSQL
/// takes a group's rows as ONE parameter, a JSON array that it unpacks
/// (`jsonb_array_elements`). SQLite takes them as anonymous `?` parameters,
/// bound by position, [`SQLITE_ROWS_PER_STATEMENT`] rows per statement: `$n`
/// parameters are found by a walk of the statement's list of names
/// (`sqlite3_bind_parameter_name`), so binding one `$n` per value cost the
/// square of their number (at 1,000 rows x 8 parameters, 70% of an import),
/// and unpacking JSON with `json_each` and `json_extract` re-read each row's
/// text once per column (a fifth of the database thread's time in issue 21's
/// profile).
const ROWS_PER_STATEMENT: usize = 2_000;
/// Most tags one contact holds (as the API's own limit).
const MAX_TAGS: usize = 100;

/// Merges a later row for the same address into an earlier one, with the
/// rule an update applies to a stored contact.
fn merge_into(earlier: &mut ImportRow, later: ImportRow) -> Result<(), String> {
    earlier.attributes.merge(&later.attributes)?;
    earlier.tags = union_tags(&earlier.tags, &later.tags)?;
    earlier.line = later.line;
    for (topic, state) in later.topics {
        match earlier.topics.iter_mut().find(|(t, _)| *t == topic) {
            Some(choice) => choice.1 = state,
            None => earlier.topics.push((topic, state)),
        }
    }
    if later.first_name.is_some() {
        earlier.first_name = later.first_name;
    }
    if later.last_name.is_some() {
        earlier.last_name = later.last_name;
    }
    Ok(())
}

fn union_tags(a: &[Tag], b: &[Tag]) -> Result<Vec<Tag>, String> {
    let mut all: Vec<Tag> = a.iter().chain(b).cloned().collect();
    all.sort();
    all.dedup();
    if all.len() > MAX_TAGS {
        return Err(format!("tags: the contact would hold more than {MAX_TAGS} tags"));
    }
    Ok(all)
}

/// One contact as the insert reads it: id, email, normalized email, first
/// and last name, tags (JSON), attributes (JSON), status.
/// Then when and where the person consented (for the consent record).
type ContactValues<'a> =
    (String, &'a str, &'a str, Option<&'a str>, Option<&'a str>, String, String, &'a str, Option<i64>, Option<&'a str>);

/// SQLite: rows per insert of contacts (8 values each) and of tags (2 each).
/// A statement of a full part is kept prepared; a shorter one (an import's
/// last) is prepared once and dropped.
const SQLITE_ROWS_PER_STATEMENT: usize = 500;
const SQLITE_TAGS_PER_STATEMENT: usize = 1_000;

fn conflict_clause(on_conflict: OnConflict) -> &'static str {
    match on_conflict {
        OnConflict::Skip => "DO NOTHING",
        OnConflict::Update => {
            "DO UPDATE SET first_name = COALESCE(excluded.first_name, contacts.first_name), \
             last_name = COALESCE(excluded.last_name, contacts.last_name), \
             tags = excluded.tags, attributes = excluded.attributes, updated_at = excluded.updated_at"
        }
    }
}

/// A new contact's status: suppressed addresses arrive `unsubscribed`.
fn status(suppressed: &HashSet<String>, row: &ImportRow) -> &'static str {
    if suppressed.contains(&row.email_normalized) {
        "unsubscribed"
    } else {
        "subscribed"
    }
}

fn tags_json(tags: &[Tag]) -> String {
    serde_json::to_string(&tags.iter().map(Tag::as_str).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Writes one chunk of an import in one transaction. Suppressed addresses
    /// arrive `unsubscribed`; a stored contact's status is never changed.
    /// Repeats of an address within the chunk count as skipped, or (update)
    /// merge into the first and count as updated.
    pub async fn import_rows(
        &self,
        tenant_id: &TenantId,
        rows: Vec<ImportRow>,
        on_conflict: OnConflict,
    ) -> Result<ImportOutcome, sqlx::Error> {
        self.import_chunk(tenant_id, None, rows, on_conflict).await
    }

    /// As [`Store::import_rows`], for one chunk of the import `report`
    /// (see `start_import`): its counters move in the chunk's own
    /// transaction, so the report counts exactly the rows committed.
    pub async fn import_chunk(
        &self,
        tenant_id: &TenantId,
        report: Option<&str>,
        rows: Vec<ImportRow>,
        on_conflict: OnConflict,
    ) -> Result<ImportOutcome, sqlx::Error> {
        let mut out = ImportOutcome::default();
        let mut unique: Vec<ImportRow> = Vec::with_capacity(rows.len());
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        for row in rows {
            match seen.get(&row.email_normalized) {
                None => {
                    seen.insert(row.email_normalized.clone(), unique.len());
                    unique.push(row);
                }
                Some(_) if on_conflict == OnConflict::Skip => out.skipped += 1,
                Some(&i) => {
                    let line = row.line;
                    match merge_into(&mut unique[i], row) {
                        Ok(()) => out.updated += 1,
                        Err(reason) => out.rejected.push((line, reason)),
                    }
                }
            }
        }
        drop(seen);
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        for chunk in unique.chunks_mut(ROWS_PER_STATEMENT) {
            self.import_statement(&mut tx, tenant_id, chunk, on_conflict, now, &mut out).await?;
        }
        if let Some(id) = report {
            Self::count_import_chunk(&mut tx, tenant_id, id, &out).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn import_statement(
        &self,
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        rows: &mut [ImportRow],
        on_conflict: OnConflict,
        now: i64,
        out: &mut ImportOutcome,
    ) -> Result<(), sqlx::Error> {
        let emails = serde_json::to_string(&rows.iter().map(|r| r.email_normalized.as_str()).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        let in_list = self.json_text_list("$2");
        let suppressed: HashSet<String> = sqlx::query_scalar::<_, String>(&format!(
            "SELECT email_normalized FROM suppressions WHERE tenant_id = $1 AND email_normalized IN ({in_list})"
        ))
        .bind(tenant_id)
        .bind(&emails)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        // The stored contacts among these addresses, by address: their ids.
        // Update: their tags and attributes too, merged here, so one statement
        // writes the result. SQLite reads them under Skip as well: its writers
        // take turns, so what this transaction reads holds until it commits, and
        // the insert need not return its rows (each returned row is a message
        // from the driver's thread).
        // Addresses the tenant erased come back suppressed (`erased`).
        let addresses: Vec<&str> = rows.iter().map(|r| r.email_normalized.as_str()).collect();
        super::erasure::suppress_erased(self, tx, now, tenant_id.as_str(), &addresses).await?;
        let mut existing: HashMap<String, String> = HashMap::new();
        let mut refused: HashSet<usize> = HashSet::new();
        if on_conflict == OnConflict::Update {
            let sql = format!(
                "SELECT email_normalized, id, tags, attributes FROM contacts \
                 WHERE tenant_id = $1 AND email_normalized IN ({in_list})"
            );
            let q = sqlx::query_as::<_, (String, String, String, String)>(&sql).bind(tenant_id).bind(&emails);
            let stored: HashMap<String, (String, String, String)> =
                q.fetch_all(&mut *tx).await?.into_iter().map(|(e, id, t, a)| (e, (id, t, a))).collect();
            for (i, row) in rows.iter_mut().enumerate() {
                let Some((id, tags, attributes)) = stored.get(&row.email_normalized) else { continue };
                let stored_tags: Vec<Tag> = serde_json::from_str::<Vec<String>>(tags)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| Tag::parse(t).ok())
                    .collect();
                let mut merged = Attributes::from_stored(attributes);
                let result = merged.merge(&row.attributes).and_then(|()| union_tags(&stored_tags, &row.tags));
                match result {
                    Ok(tags) => {
                        row.attributes = merged;
                        row.tags = tags;
                        existing.insert(row.email_normalized.clone(), id.clone());
                    }
                    Err(reason) => {
                        out.rejected.push((row.line, reason));
                        refused.insert(i);
                    }
                }
            }
        } else if self.backend == Backend::Sqlite {
            let sql = format!(
                "SELECT email_normalized, id FROM contacts WHERE tenant_id = $1 AND email_normalized IN ({in_list})"
            );
            existing = sqlx::query_as::<_, (String, String)>(&sql)
                .bind(tenant_id)
                .bind(&emails)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        }
        let writable: Vec<&ImportRow> =
            rows.iter().enumerate().filter(|(i, _)| !refused.contains(i)).map(|(_, r)| r).collect();
        if writable.is_empty() {
            return Ok(());
        }
        match self.backend {
            Backend::Postgres => {
                self.write_returning(tx, tenant_id, &writable, &suppressed, on_conflict, now, out).await
            }
            Backend::Sqlite => {
                self.write_known(tx, tenant_id, &writable, &existing, &suppressed, on_conflict, now, out).await
            }
        }
    }

    /// PostgreSQL: one statement inserts the rows and the tags of those
    /// written (their stored tags, merged on update; another transaction may
    /// insert an address meanwhile, so what was written is what the insert
    /// returns), and answers how many were written and how many of those
    /// inserted (`xmax = 0`: not an update). The tags' statement-level trigger
    /// adds each tag's total once.
    #[allow(clippy::too_many_arguments)]
    async fn write_returning(
        &self,
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        writable: &[&ImportRow],
        suppressed: &HashSet<String>,
        on_conflict: OnConflict,
        now: i64,
        out: &mut ImportOutcome,
    ) -> Result<(), sqlx::Error> {
        let values: Vec<ContactValues<'_>> = writable
            .iter()
            .map(|r| {
                (
                    new_id(),
                    r.email.as_str(),
                    r.email_normalized.as_str(),
                    r.first_name.as_deref(),
                    r.last_name.as_deref(),
                    tags_json(&r.tags),
                    r.attributes.to_json(),
                    status(suppressed, r),
                    r.consented_at,
                    r.consent_source.as_deref(),
                )
            })
            .collect();
        // Each new contact's `imported` record: from the rows' own consent
        // columns when the chunk has any (the rows read again, joined by id),
        // else from what the insert returns alone.
        let noted = writable.iter().any(|r| r.consented_at.is_some() || r.consent_source.is_some());
        let record_source = if noted {
            format!("written w JOIN {} ON w.id = {} WHERE w.created", self.json_rows("$3"), self.json_item(0))
        } else {
            "written w WHERE w.created".to_owned()
        };
        let (at, note) = if noted {
            (format!("COALESCE(CAST({} AS BIGINT), $2)", self.json_item(8)), self.json_item(9))
        } else {
            ("$2".to_owned(), "NULL".to_owned())
        };
        let values = serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
        let choices: Vec<[&str; 3]> = writable
            .iter()
            .flat_map(|r| {
                r.topics.iter().map(|(topic, state)| [r.email_normalized.as_str(), topic.as_str(), state.as_str()])
            })
            .collect();
        let chosen = if choices.is_empty() {
            String::new()
        } else {
            // Numbered after the `imported` records of the same prefix (a chunk is far fewer than 2^32 rows).
            super::import_topics::postgres_ctes(
                "$5",
                &self.sql_sequential_id("$4", "4294967296 + ROW_NUMBER() OVER ()"),
            )
        };
        let item = |i| self.json_item(i);
        let sql = format!(
            "WITH written AS (INSERT INTO contacts (id, tenant_id, email, email_normalized, first_name, last_name, tags, \
               attributes, status, created_at, updated_at) \
             SELECT {}, $1, {}, {}, {}, {}, {}, {}, {}, $2, $2 FROM {} WHERE true \
             ON CONFLICT (tenant_id, email_normalized) {} RETURNING id, email_normalized, tags, xmax = 0 AS created), \
             tagged AS (INSERT INTO contact_tags (tenant_id, contact_id, tag) \
               SELECT $1, w.id, t.tag FROM written w, jsonb_array_elements_text(CAST(w.tags AS jsonb)) AS t(tag) \
               ON CONFLICT DO NOTHING), \
             recorded AS (INSERT INTO consent_records (id, tenant_id, contact_id, at, change, source, source_note) \
               SELECT {}, $1, w.id, {at}, 'imported', 'import', {note} FROM {record_source}){chosen} \
             SELECT COUNT(*), COUNT(*) FILTER (WHERE created) FROM written",
            item(0),
            item(1),
            item(2),
            item(3),
            item(4),
            item(5),
            item(6),
            item(7),
            self.json_rows("$3"),
            conflict_clause(on_conflict),
            self.sql_sequential_id("$4", "ROW_NUMBER() OVER ()"),
        );
        let mut q = sqlx::query_as(&sql).bind(tenant_id).bind(now).bind(values).bind(super::id_prefix());
        if !choices.is_empty() {
            q = q.bind(serde_json::to_string(&choices).unwrap_or_else(|_| "[]".into()));
        }
        let (written, created): (i64, i64) = q.fetch_one(&mut *tx).await?;
        let (written, created) = (u64::try_from(written).unwrap_or(0), u64::try_from(created).unwrap_or(0));
        out.created += created;
        out.updated += written.saturating_sub(created);
        out.skipped += (writable.len() as u64).saturating_sub(written);
        Ok(())
    }

    /// SQLite, whose writers take turns: which rows are stored is known (read
    /// in this transaction), so the new contacts get their ids here and
    /// nothing needs returning. Rows are bound as `?` values (anonymous
    /// parameters are bound by position, named ones found by a walk of the
    /// statement's list of names). The new contacts' tags are written without
    /// the per-row trigger (migration 0030) and their totals added by one
    /// upsert; an updated contact's go through the trigger, which counts
    /// only the rows not stored yet.
    #[allow(clippy::too_many_arguments)]
    async fn write_known(
        &self,
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        writable: &[&ImportRow],
        existing: &HashMap<String, String>,
        suppressed: &HashSet<String>,
        on_conflict: OnConflict,
        now: i64,
        out: &mut ImportOutcome,
    ) -> Result<(), sqlx::Error> {
        // (row, a new id, the stored contact's id, its tags and attributes as JSON):
        // a stored contact keeps its id (the new one only fills the insert that updates it).
        let mut insert: Vec<(&ImportRow, String, Option<&str>, String, String)> = Vec::with_capacity(writable.len());
        for r in writable {
            match existing.get(&r.email_normalized) {
                Some(_) if on_conflict == OnConflict::Skip => out.skipped += 1,
                stored => {
                    insert.push((r, new_id(), stored.map(String::as_str), tags_json(&r.tags), r.attributes.to_json()))
                }
            }
        }
        for part in insert.chunks(SQLITE_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO contacts (id, tenant_id, email, email_normalized, first_name, last_name, tags, attributes, \
                   status, created_at, updated_at) \
                 SELECT v.column1, p.tenant, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, \
                   v.column8, p.now, p.now FROM (SELECT ? AS tenant, ? AS now) p, (VALUES {}) v WHERE true \
                 ON CONFLICT (tenant_id, email_normalized) {}",
                placeholders(part.len(), 8),
                conflict_clause(on_conflict),
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str()).bind(now);
            for (r, id, _, tags, attributes) in part {
                q = q
                    .bind(id.as_str())
                    .bind(r.email.as_str())
                    .bind(r.email_normalized.as_str())
                    .bind(r.first_name.as_deref())
                    .bind(r.last_name.as_deref())
                    .bind(tags.as_str())
                    .bind(attributes.as_str())
                    .bind(status(suppressed, r));
            }
            let done = q.persistent(part.len() == SQLITE_ROWS_PER_STATEMENT).execute(&mut *tx).await?;
            if done.rows_affected() != part.len() as u64 {
                // Cannot happen while writers take turns; never count what was not written.
                return Err(sqlx::Error::Protocol(format!(
                    "import: {} of {} contacts written",
                    done.rows_affected(),
                    part.len()
                )));
            }
        }
        let mut created_tags: Vec<[&str; 2]> = Vec::new();
        let mut updated_tags: Vec<[&str; 2]> = Vec::new();
        for (r, id, stored, _, _) in &insert {
            match stored {
                None => {
                    out.created += 1;
                    created_tags.extend(r.tags.iter().map(|t| [id.as_str(), t.as_str()]));
                }
                Some(id) => {
                    out.updated += 1;
                    updated_tags.extend(r.tags.iter().map(|t| [*id, t.as_str()]));
                }
            }
        }
        if !created_tags.is_empty() {
            sqlx::query("INSERT INTO tag_counts_by_writer (id) VALUES (1)").execute(&mut *tx).await?;
            Self::insert_tag_values(tx, tenant_id, &created_tags).await?;
            let mut totals: HashMap<&str, i64> = HashMap::new();
            for [_, tag] in &created_tags {
                *totals.entry(tag).or_default() += 1;
            }
            let mut totals: Vec<(&str, i64)> = totals.into_iter().collect();
            totals.sort_unstable();
            let totals = serde_json::to_string(&totals).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO tag_counts (tenant_id, tag, members) \
                 SELECT $1, json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]') FROM json_each($2) AS r WHERE true \
                 ON CONFLICT (tenant_id, tag) DO UPDATE SET members = tag_counts.members + excluded.members",
            )
            .bind(tenant_id)
            .bind(totals)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM tag_counts_by_writer").execute(&mut *tx).await?;
        }
        Self::insert_tag_values(tx, tenant_id, &updated_tags).await?;
        let created: Vec<(&ImportRow, &str)> = insert
            .iter()
            .filter(|(_, _, stored, _, _)| stored.is_none())
            .map(|(r, id, ..)| (*r, id.as_str()))
            .collect();
        Self::record_imported(tx, tenant_id, &created, now).await?;
        let choices: Vec<(&str, &str, &str)> = insert
            .iter()
            .flat_map(|(r, id, stored, _, _)| {
                let contact = stored.unwrap_or(id.as_str());
                r.topics.iter().map(move |(topic, state)| (contact, topic.as_str(), state.as_str()))
            })
            .collect();
        if !choices.is_empty() {
            Self::import_topic_choices(tx, tenant_id, &choices, now).await?;
        }
        Ok(())
    }

    /// SQLite: the new contacts' `imported` consent records, at the row's
    /// `consented_at` (else the import's time) with its `consent_source`
    /// note, bound as `?` values like the contacts themselves.
    async fn record_imported(
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        created: &[(&ImportRow, &str)],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        for part in created.chunks(SQLITE_TAGS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO consent_records (id, tenant_id, contact_id, at, change, source, source_note) \
                 SELECT v.column1, p.tenant, v.column2, v.column3, 'imported', 'import', v.column4 \
                 FROM (SELECT ? AS tenant) p, (VALUES {}) v WHERE true",
                placeholders(part.len(), 4)
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for (r, id) in part {
                q = q.bind(new_id()).bind(*id).bind(r.consented_at.unwrap_or(now)).bind(r.consent_source.as_deref());
            }
            q.persistent(part.len() == SQLITE_TAGS_PER_STATEMENT).execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// SQLite: inserts (contact id, tag) rows into `contact_tags`, bound as `?`
    /// values; rows stored already are left alone.
    async fn insert_tag_values(
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        tag_rows: &[[&str; 2]],
    ) -> Result<(), sqlx::Error> {
        for part in tag_rows.chunks(SQLITE_TAGS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO contact_tags (tenant_id, contact_id, tag) \
                 SELECT p.tenant, v.column1, v.column2 FROM (SELECT ? AS tenant) p, (VALUES {}) v WHERE true \
                 ON CONFLICT DO NOTHING",
                placeholders(part.len(), 2)
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str());
            for [id, tag] in part {
                q = q.bind(*id).bind(*tag);
            }
            q.persistent(part.len() == SQLITE_TAGS_PER_STATEMENT).execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// `FROM` source: the elements of the JSON array bound as `param`, each
    /// an array named `r`. JSON is unpacked differently by the two backends.
    fn json_rows(&self, param: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each({param}) AS r"),
            Backend::Postgres => format!("jsonb_array_elements(CAST({param} AS jsonb)) AS r"),
        }
    }

    /// Item `i` of the row `r` of [`Store::json_rows`], as text (NULL for null).
    fn json_item(&self, i: usize) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_extract(r.value, '$[{i}]')"),
            Backend::Postgres => format!("(r ->> {i})"),
        }
    }

    /// A subquery of the strings of the JSON array bound as `param`, for `IN (...)`.
    fn json_text_list(&self, param: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
            Backend::Postgres => format!("SELECT jsonb_array_elements_text(CAST({param} AS jsonb))"),
        }
    }

    /// After a large import, refresh the planner's statistics (PostgreSQL).
    pub async fn imported(&self, created: u64) -> Result<(), sqlx::Error> {
        if created >= super::contacts::BULK_ROWS {
            self.refresh_statistics(&["contacts", "contact_tags"]).await?;
        }
        Ok(())
    }

    /// Every attribute key any of the tenant's contacts holds, sorted: the
    /// export's extra columns. JSON is read differently by the two backends.
    pub async fn attribute_keys(&self, tenant_id: &TenantId) -> Result<Vec<String>, sqlx::Error> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT DISTINCT j.key FROM contacts c, json_each(CASE WHEN json_valid(c.attributes) \
                 AND json_type(c.attributes) = 'object' THEN c.attributes ELSE '{}' END) j \
                 WHERE c.tenant_id = $1 ORDER BY 1"
            }
            Backend::Postgres => {
                "SELECT DISTINCT k FROM contacts c, jsonb_object_keys(CASE WHEN jsonb_typeof(CAST(c.attributes AS jsonb)) \
                 = 'object' THEN CAST(c.attributes AS jsonb) ELSE CAST('{}' AS jsonb) END) AS k \
                 WHERE c.tenant_id = $1 ORDER BY 1"
            }
        };
        sqlx::query_scalar(sql).bind(tenant_id).fetch_all(&self.pool).await
    }

    /// One page of the tenant's contacts after id `after` (`""`: from the start), in id order.
    pub async fn contacts_after(
        &self,
        tenant_id: &TenantId,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ContactRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.tenant_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}
