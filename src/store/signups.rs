//! Signups (issue 23, section 2): a person signing up through a form or the
//! API, with or without double opt-in; confirming; and forgetting pending
//! contacts nobody confirmed.

use sqlx::FromRow;

use super::contacts::{
    contact_by_email_in, insert_contact, tags_json, write_tags, ContactRow, NewContact, CONTACT_COLUMNS,
};
use super::{Store, StoreError};
use crate::domain::{ConsentChange, ConsentOrigin, Tag, TenantId, TopicChoice, TopicState};

/// What a signup asks for.
pub struct NewSignup {
    pub contact: NewContact,
    /// Double opt-in: the contact waits, `pending`, for its confirmation.
    pub double_opt_in: bool,
    /// Topics subscribed to (at once without double opt-in; on confirmation with it).
    pub topic_ids: Vec<String>,
    pub form_id: Option<String>,
}

/// What a signup did.
pub struct SignedUp {
    /// The contact, new or as it was.
    pub contact: ContactRow,
    /// Whether the contact is new.
    pub created: bool,
    /// The signup to confirm (double opt-in): its id, for the confirmation link.
    pub signup_id: Option<String>,
}

/// A signup a confirmation link names, with what its page shows.
#[derive(Clone, Debug, FromRow)]
pub struct SignupTarget {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub tenant_locale: String,
    pub contact_id: String,
    pub form_id: Option<String>,
    pub consent_text: Option<String>,
    pub consent_text_version: Option<String>,
    pub confirmed_at: Option<i64>,
}

fn subscribe_all(topic_ids: &[String]) -> Vec<(String, TopicChoice)> {
    topic_ids.iter().map(|id| (id.clone(), TopicChoice::Set(TopicState::Subscribed))).collect()
}

/// Adds `tags` to a contact's own, in `tx`.
async fn add_tags(
    tx: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    contact: &ContactRow,
    tags: &[Tag],
    now: i64,
) -> Result<(), sqlx::Error> {
    if tags.is_empty() {
        return Ok(());
    }
    let have: Vec<String> = serde_json::from_str(&contact.tags).unwrap_or_default();
    let mut all: Vec<Tag> = have.iter().filter_map(|t| Tag::parse(t).ok()).collect();
    let before = all.len();
    for t in tags {
        if !all.contains(t) {
            all.push(t.clone());
        }
    }
    if all.len() == before {
        return Ok(());
    }
    all.sort();
    sqlx::query("UPDATE contacts SET tags = $1, updated_at = $2 WHERE id = $3")
        .bind(tags_json(&all))
        .bind(now)
        .bind(&contact.id)
        .execute(&mut *tx)
        .await?;
    write_tags(tx, tenant_id, &contact.id, &all).await
}

impl Store {
    /// Signs a person up, in one transaction. A new address becomes a
    /// contact — `pending` with double opt-in, else `subscribed` to the
    /// form's topics at once — its creation recorded from `origin`. A known
    /// address keeps its status (no stranger's post changes someone's
    /// consent); without double opt-in it gets the tags and, when
    /// subscribed, the topics. With double opt-in, new or known, a signup
    /// to confirm is written (tags and topics come with the confirmation).
    pub async fn sign_up(
        &self,
        tenant_id: &TenantId,
        s: NewSignup,
        origin: &ConsentOrigin,
    ) -> Result<SignedUp, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let existing = contact_by_email_in(&mut *tx, tenant_id, &s.contact.email_normalized).await?;
        let (contact, created) = match existing {
            Some(c) => {
                // With double opt-in, a known contact's tags and topics wait
                // for the confirmation: a stranger's post must not put it in
                // a tag's audience.
                if !s.double_opt_in {
                    add_tags(&mut tx, tenant_id, &c, &s.contact.tags, now).await?;
                }
                if !s.double_opt_in && c.status == "subscribed" {
                    // A stranger's post may add what the person never
                    // answered, never undo a choice the person made (leaving
                    // a topic is undone only through the person's own
                    // preference centre or a confirmed double opt-in).
                    let stood = super::topics::contact_topics_in(&mut tx, tenant_id, &c.id).await?.unwrap_or_default();
                    let unanswered: Vec<String> = s
                        .topic_ids
                        .iter()
                        .filter(|id| stood.iter().any(|t| &t.id == *id && t.choice.is_none()))
                        .cloned()
                        .collect();
                    let topics = subscribe_all(&unanswered);
                    super::topics::write_choices(&mut tx, now, tenant_id, &c.id, &topics, false, origin).await?;
                }
                (c, false)
            }
            None => {
                let c = &s.contact;
                let status = if s.double_opt_in { "pending" } else { "subscribed" };
                insert_contact(&mut tx, tenant_id, c, status, now).await.map_err(StoreError::from_sqlx)?;
                // An erased address that signs up again stays unmailed until
                // it confirms (a confirmation lifts the `erased` suppression).
                super::erasure::suppress_erased(self, &mut tx, now, tenant_id.as_str(), &[&c.email_normalized]).await?;
                super::consent::record(&mut tx, now, tenant_id.as_str(), &c.id, ConsentChange::Created, None, origin)
                    .await?;
                // Choices given with the contact (the API's); a pending
                // contact gets no campaign mail whatever its topics say.
                let mut topics = c.topics.clone();
                if !s.double_opt_in {
                    topics.extend(subscribe_all(&s.topic_ids));
                }
                super::topics::write_choices(&mut tx, now, tenant_id, &c.id, &topics, false, origin).await?;
                let row = ContactRow {
                    id: c.id.clone(),
                    tenant_id: tenant_id.to_string(),
                    email: c.email.clone(),
                    first_name: c.first_name.clone(),
                    last_name: c.last_name.clone(),
                    tags: tags_json(&c.tags),
                    attributes: c.attributes_json.clone(),
                    status: status.to_owned(),
                    created_at: now,
                    updated_at: now,
                };
                (row, true)
            }
        };
        let signup_id = if s.double_opt_in {
            let id = crate::domain::new_id();
            sqlx::query(
                "INSERT INTO signups (id, tenant_id, contact_id, form_id, consent_text, consent_text_version, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(tenant_id)
            .bind(&contact.id)
            .bind(&s.form_id)
            .bind(&origin.consent_text)
            .bind(&origin.consent_text_version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Some(id)
        } else {
            None
        };
        tx.commit().await?;
        Ok(SignedUp { contact, created, signup_id })
    }

    /// The signup a confirmation link names, while its contact exists.
    pub async fn signup_target(&self, signup_id: &str) -> Result<Option<SignupTarget>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.id, s.tenant_id, t.name AS tenant_name, t.locale AS tenant_locale, s.contact_id, s.form_id, \
               s.consent_text, s.consent_text_version, s.confirmed_at \
             FROM signups s JOIN tenants t ON t.id = s.tenant_id \
               JOIN contacts c ON c.id = s.contact_id AND c.tenant_id = s.tenant_id \
             WHERE s.id = $1",
        )
        .bind(signup_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Confirms a signup, once, in one transaction: the contact is
    /// subscribed (from `pending`, or from a global unsubscribe: a confirmed
    /// double opt-in is the one thing that lifts it), the address's
    /// suppressions of reason `unsubscribed` or `erased` are lifted (never a
    /// bounce's or a complaint's), the confirmation is recorded from
    /// `origin`, then the topics and tags are applied. False when the
    /// signup was confirmed already (nothing changes again).
    pub async fn confirm_signup(
        &self,
        target: &SignupTarget,
        topic_ids: &[String],
        tags: &[Tag],
        origin: &ConsentOrigin,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let first = sqlx::query("UPDATE signups SET confirmed_at = $1 WHERE id = $2 AND confirmed_at IS NULL")
            .bind(now)
            .bind(&target.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !first {
            tx.commit().await?;
            return Ok(false);
        }
        let tenant_id = TenantId::from_stored(target.tenant_id.clone());
        let contact: Option<ContactRow> =
            sqlx::query_as(&format!("SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.tenant_id = $1 AND c.id = $2"))
                .bind(&tenant_id)
                .bind(&target.contact_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(contact) = contact else {
            tx.commit().await?;
            return Ok(false);
        };
        sqlx::query(
            "UPDATE contacts SET status = 'subscribed', updated_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND status IN ('pending', 'unsubscribed')",
        )
        .bind(now)
        .bind(&tenant_id)
        .bind(&contact.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM suppressions WHERE tenant_id = $1 AND reason IN ('unsubscribed', 'erased') \
               AND email_normalized = (SELECT email_normalized FROM contacts WHERE id = $2)",
        )
        .bind(&tenant_id)
        .bind(&contact.id)
        .execute(&mut *tx)
        .await?;
        super::consent::record(&mut tx, now, tenant_id.as_str(), &contact.id, ConsentChange::Confirmed, None, origin)
            .await?;
        let topics = subscribe_all(topic_ids);
        super::topics::write_choices(&mut tx, now, &tenant_id, &contact.id, &topics, false, origin).await?;
        add_tags(&mut tx, &tenant_id, &contact, tags, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets pending contacts created before `before` (nobody confirmed
    /// them): the contact and everything that goes with it, the client
    /// details of its consent records (the records stay, naming no one), and
    /// the address in what was sent to it (its confirmation email: replaced
    /// by the address's keyed hash). What is kept of the address is the
    /// keyed hash its rate limit counted. A known contact's signup left
    /// unconfirmed as long stops confirming (its link answers 404). Also
    /// sweeps rate-limit attempts older than `attempts_before`. Returns how
    /// many contacts were forgotten.
    pub async fn expire_pending(&self, before: i64, attempts_before: i64) -> Result<u64, sqlx::Error> {
        /// Contacts forgotten per transaction (SQLite's write lock is held for one).
        const CHUNK: i64 = 200;
        let mut gone = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let due: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT tenant_id, id, email, email_normalized FROM contacts \
                 WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2",
            )
            .bind(before)
            .bind(CHUNK)
            .fetch_all(&mut *tx)
            .await?;
            for (tenant_id, contact_id, email, normalized) in &due {
                let hidden = crate::domain::erased_address(&self.address_hash(tenant_id, normalized));
                let person = super::erasure::Person { tenant_id, contact_id, email, normalized };
                self.forget_signup_in(&mut tx, &person, &hidden).await?;
            }
            tx.commit().await?;
            gone += due.len() as u64;
            if (due.len() as i64) < CHUNK {
                break;
            }
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM signups WHERE confirmed_at IS NULL AND created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM signup_attempts WHERE at < $1").bind(attempts_before).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(gone)
    }
}
