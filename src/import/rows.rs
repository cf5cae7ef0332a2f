//! One contact row, checked the way `POST /contacts` checks one; and the CSV
//! parser that turns records into rows under the header's column names.

use super::csv::{CsvRecords, Event, Fields};
use super::topics::{topic_column, topic_state, TopicIndex};
use super::{ImportError, Parser, Sink};
use crate::domain::attributes::check_key;
use crate::domain::{check_single_line, Attributes, EmailAddress, Tag, TopicState};
use crate::store::ImportRow;

/// Longest first or last name (as the contacts API).
const NAME_MAX: usize = 100;
/// Most tags one contact holds (as the contacts API).
const TAGS_MAX: usize = 100;

/// The fields of one contact as given, before checking.
pub struct RowInput<'a> {
    pub line: u64,
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub tags: Vec<&'a str>,
    pub attributes: Attributes,
    /// When the person consented (RFC 3339): the time of the contact's consent record.
    pub consented_at: Option<&'a str>,
    /// Where the consent was given, in the tenant's words: the record's `source_note`.
    pub consent_source: Option<&'a str>,
    /// The contact's choices on topics: (topic id, state), each topic once.
    pub topics: Vec<(String, TopicState)>,
}

/// Checks one row; the error names the field.
pub fn build_row(input: RowInput<'_>) -> Result<ImportRow, String> {
    let email = EmailAddress::parse(input.email).map_err(|e| format!("email: {e}"))?;
    if input.tags.len() > TAGS_MAX {
        return Err(format!("tags: a contact holds at most {TAGS_MAX} tags"));
    }
    let mut tags =
        input.tags.iter().map(|t| Tag::parse(t).map_err(|e| format!("tags: {e}"))).collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    tags.dedup();
    Ok(ImportRow {
        line: input.line,
        email_normalized: email.normalized(),
        email: email.to_string(),
        first_name: name(input.first_name, "first_name")?,
        last_name: name(input.last_name, "last_name")?,
        tags,
        attributes: input.attributes,
        topics: input.topics,
        consented_at: match input.consented_at.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(
                crate::domain::parse_rfc3339(v)
                    .map_err(|_| "consented_at: not an RFC 3339 time (2026-01-31T09:00:00Z)".to_owned())?,
            ),
        },
        consent_source: match input.consent_source.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                check_single_line(v, "consent_source")?;
                if v.chars().count() > CONSENT_SOURCE_MAX {
                    return Err(format!("consent_source: longer than {CONSENT_SOURCE_MAX} characters"));
                }
                Some(v.to_owned())
            }
        },
    })
}

/// Longest `consent_source` note.
const CONSENT_SOURCE_MAX: usize = 500;

/// Trimmed; empty is absent; one line of at most [`NAME_MAX`] characters.
fn name(value: Option<&str>, field: &str) -> Result<Option<String>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            check_single_line(v, field)?;
            if v.chars().count() > NAME_MAX {
                return Err(format!("{field}: longer than {NAME_MAX} characters"));
            }
            Ok(Some(v.to_owned()))
        }
    }
}

/// Undoes the export's guard against formula injection: a cell the export
/// prefixed with `'` (because it began with `=`, `+`, `-`, `@`, a tab, a CR or
/// `'`) loses that one `'`. See `api::contacts::neutralise`.
pub fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) => rest,
        _ => cell,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Column {
    Email,
    FirstName,
    LastName,
    Tags,
    ConsentedAt,
    ConsentSource,
    /// A column of the export that an import does not take (`status`, `created_at`).
    Ignored,
    Attribute(String),
    /// `topic:<name or id>`: the topic's id, and the name the header gives.
    Topic(String, String),
}

#[derive(Default)]
pub struct CsvParser {
    records: CsvRecords,
    columns: Option<Vec<Column>>,
    header_error: Option<String>,
    topics: TopicIndex,
}

impl CsvParser {
    /// A parser whose `topic:` columns name the tenant's `topics`.
    pub fn new(topics: TopicIndex) -> Self {
        Self { topics, ..Self::default() }
    }
}

fn header(fields: &Fields<'_>, topics: &TopicIndex) -> Result<Vec<Column>, String> {
    let mut columns = Vec::with_capacity(fields.len());
    for i in 0..fields.len() {
        let raw = fields.get(i).unwrap_or_default();
        let name = std::str::from_utf8(raw).map_err(|_| "the CSV header is not valid UTF-8".to_owned())?.trim();
        let column = match name.to_ascii_lowercase().as_str() {
            "email" => Column::Email,
            "first_name" => Column::FirstName,
            "last_name" => Column::LastName,
            "tags" => Column::Tags,
            "consented_at" => Column::ConsentedAt,
            "consent_source" => Column::ConsentSource,
            "status" | "created_at" => Column::Ignored,
            _ if topic_column(name).is_some() => {
                let given = topic_column(name).unwrap_or_default().trim();
                let Some(id) = topics.resolve(given) else {
                    return Err(format!(
                        "CSV header, column {}: the customer has no topic `{}` (topic:<name or id>)",
                        i + 1,
                        given.escape_debug()
                    ));
                };
                if columns.iter().any(|c| matches!(c, Column::Topic(other, _) if other == id)) {
                    return Err(format!("CSV header: topic `{}` has two columns", given.escape_debug()));
                }
                Column::Topic(id.to_owned(), given.to_owned())
            }
            _ => {
                check_key(name).map_err(|e| format!("CSV header, column {}: {e}", i + 1))?;
                Column::Attribute(name.to_owned())
            }
        };
        if columns.contains(&column) && column != Column::Ignored {
            return Err(format!("CSV header: column `{name}` appears twice"));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::Email) {
        return Err("CSV header: an `email` column is required (the first line names the columns)".into());
    }
    Ok(columns)
}

fn csv_row(columns: &[Column], line: u64, fields: &Fields<'_>) -> Result<ImportRow, String> {
    let mut email = "";
    let (mut first_name, mut last_name) = (None, None);
    let mut tags = Vec::new();
    let mut attributes = Attributes::default();
    let (mut consented_at, mut consent_source) = (None, None);
    let mut topics = Vec::new();
    if fields.len() > columns.len() {
        return Err(format!("too many columns ({}, the header has {})", fields.len(), columns.len()));
    }
    for (i, column) in columns.iter().enumerate() {
        let Some(raw) = fields.get(i) else { break };
        let cell = std::str::from_utf8(raw).map_err(|_| format!("column {}: not valid UTF-8", i + 1))?;
        if cell.contains('\0') {
            return Err(format!("column {}: contains a NUL character", i + 1));
        }
        let cell = unneutralise(cell);
        match column {
            Column::Email => email = cell,
            Column::FirstName => first_name = Some(cell),
            Column::LastName => last_name = Some(cell),
            Column::Tags => tags = cell.split(';').map(str::trim).filter(|t| !t.is_empty()).collect(),
            Column::ConsentedAt => consented_at = Some(cell),
            Column::ConsentSource => consent_source = Some(cell),
            Column::Ignored => {}
            Column::Topic(id, given) => {
                if let Some(state) = topic_state(given, cell)? {
                    topics.push((id.clone(), state));
                }
            }
            Column::Attribute(key) if !cell.is_empty() => attributes.insert_text(key, cell.to_owned())?,
            Column::Attribute(_) => {}
        }
    }
    if email.trim().is_empty() {
        return Err("email: missing".into());
    }
    build_row(RowInput { line, email, first_name, last_name, tags, attributes, consented_at, consent_source, topics })
}

impl CsvParser {
    fn take(&mut self, sink: &mut Sink, chunk: Option<&[u8]>) -> Result<(), ImportError> {
        let columns = &mut self.columns;
        let header_error = &mut self.header_error;
        let topics = &self.topics;
        let mut on = |e: Event<'_>| {
            if header_error.is_some() {
                return;
            }
            match (e, columns.as_ref()) {
                (Event::Record { line, fields }, Some(cols)) => sink.row(line, csv_row(cols, line, &fields)),
                (Event::Dropped { line, reason }, Some(_)) => sink.report.reject(line, reason),
                (Event::Record { fields, .. }, None) => match header(&fields, topics) {
                    Ok(cols) => *columns = Some(cols),
                    Err(e) => *header_error = Some(e),
                },
                (Event::Dropped { reason, .. }, None) => *header_error = Some(format!("CSV header: {reason}")),
            }
        };
        match chunk {
            Some(c) => self.records.push(c, &mut on),
            None => self.records.finish(&mut on),
        }
        if let Some(e) = self.header_error.take() {
            return Err(ImportError::Invalid(e));
        }
        Ok(())
    }
}

impl Parser for CsvParser {
    fn push(&mut self, chunk: &[u8], sink: &mut Sink) -> Result<(), ImportError> {
        self.take(sink, Some(chunk))
    }

    fn finish(&mut self, sink: &mut Sink) -> Result<(), ImportError> {
        self.take(sink, None)?;
        if self.columns.is_none() {
            return Err(ImportError::Invalid("the body is empty: a CSV import starts with a header line".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_guard_is_undone_once_and_only_where_the_export_put_it() {
        assert_eq!(unneutralise("'=1+1"), "=1+1");
        assert_eq!(unneutralise("'-5"), "-5");
        assert_eq!(unneutralise("''x"), "'x");
        assert_eq!(unneutralise("'hello"), "'hello");
        assert_eq!(unneutralise("plain"), "plain");
    }

    #[test]
    fn names_are_trimmed_single_lines_and_empty_means_absent() {
        assert_eq!(name(Some("  Ada "), "first_name").unwrap().as_deref(), Some("Ada"));
        assert_eq!(name(Some("   "), "first_name").unwrap(), None);
        assert!(name(Some("a\nb"), "first_name").is_err());
        assert!(name(Some(&"x".repeat(101)), "first_name").is_err());
    }
}
