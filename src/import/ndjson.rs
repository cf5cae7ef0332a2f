//! NDJSON: one JSON contact per line, with the fields of `POST /contacts`.

use serde::Deserialize;
use serde_json::Value;

use super::rows::{build_row, RowInput};
use super::topics::{topic_state, TopicIndex};
use super::{ImportError, Parser, Sink};
use crate::domain::{nul_path, Attributes};
use crate::store::ImportRow;

/// Longest line kept; a longer one is read to its end and reported.
const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineContact {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    attributes: Option<Value>,
    consented_at: Option<String>,
    consent_source: Option<String>,
    /// The contact's choice per topic, by the topic's name or id:
    /// `subscribed`, `unsubscribed`, or empty for no change.
    #[serde(default)]
    topics: std::collections::BTreeMap<String, String>,
}

#[derive(Default)]
pub struct NdjsonParser {
    /// The tenant's topics, as rows name them.
    topics: TopicIndex,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// Lines completed so far.
    lines: u64,
    /// The current line passed [`MAX_LINE_BYTES`]: dropped when it ends.
    too_long: bool,
}

impl NdjsonParser {
    /// A parser whose rows' `topics` name the tenant's `topics`.
    pub fn new(topics: TopicIndex) -> Self {
        Self { topics, ..Self::default() }
    }
}

fn contact(line: u64, bytes: &[u8], index: &TopicIndex) -> Result<ImportRow, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object: {e}"))?;
    if let Some(path) = nul_path(&value) {
        return Err(format!("`{path}` must not contain a NUL character"));
    }
    let c = LineContact::deserialize(value).map_err(|e| e.to_string())?;
    let attributes = match &c.attributes {
        None | Some(Value::Null) => Attributes::default(),
        Some(v) => Attributes::parse(v)?,
    };
    let mut topics: Vec<(String, crate::domain::TopicState)> = Vec::new();
    for (given, cell) in &c.topics {
        let Some(id) = index.resolve(given) else {
            return Err(format!("topics: the customer has no topic `{}`", given.escape_debug()));
        };
        if topics.iter().any(|(other, _)| other == id) {
            return Err(format!("topics: topic `{}` is named twice", given.escape_debug()));
        }
        if let Some(state) = topic_state(given, cell)? {
            topics.push((id.to_owned(), state));
        }
    }
    build_row(RowInput {
        line,
        email: &c.email,
        first_name: c.first_name.as_deref(),
        last_name: c.last_name.as_deref(),
        tags: c.tags.iter().map(String::as_str).collect(),
        attributes,
        consented_at: c.consented_at.as_deref(),
        consent_source: c.consent_source.as_deref(),
        topics,
    })
}

impl NdjsonParser {
    fn line(&mut self, bytes: &[u8], sink: &mut Sink) {
        self.lines += 1;
        let line = self.lines;
        if std::mem::take(&mut self.too_long) {
            sink.report.reject(line, format!("the line is longer than {} KiB", MAX_LINE_BYTES / 1024));
            return;
        }
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        sink.row(line, contact(line, bytes, &self.topics));
    }
}

impl Parser for NdjsonParser {
    fn push(&mut self, mut chunk: &[u8], sink: &mut Sink) -> Result<(), ImportError> {
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            let (head, rest) = (&chunk[..end], &chunk[end + 1..]);
            if self.partial.is_empty() {
                self.line(head, sink);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                if !self.too_long {
                    whole.extend_from_slice(head);
                }
                self.line(&whole, sink);
                whole.clear();
                self.partial = whole;
            }
            chunk = rest;
        }
        if self.too_long {
            return Ok(());
        }
        if self.partial.len() + chunk.len() > MAX_LINE_BYTES {
            self.too_long = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn finish(&mut self, sink: &mut Sink) -> Result<(), ImportError> {
        if !self.partial.is_empty() || self.too_long {
            let last = std::mem::take(&mut self.partial);
            self.line(&last, sink);
        }
        Ok(())
    }
}
