//! CSV records from a body that arrives in chunks.
//!
//! Built on `csv-core`, the push parser under the `csv` crate: it takes
//! whatever bytes have arrived and hands back fields as records complete, so
//! nothing but the current record is held. The record's buffers are bounded
//! too: a row longer than [`MAX_RECORD_BYTES`] or wider than the header (an
//! unclosed quote, a 10,000-column line) is parsed to its end and reported,
//! never accumulated. (`csv::Reader` and `csv-async` grow a record without bound.)

/// Longest record kept: 50 attributes of 1,000 four-byte characters, names and
/// 100 tags fit with room to spare.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;
/// Widest header accepted.
pub const MAX_COLUMNS: usize = 256;

/// One record, or why it was dropped.
pub enum Event<'a> {
    Record { line: u64, fields: Fields<'a> },
    Dropped { line: u64, reason: String },
}

/// The fields of one record, borrowed from the reader's buffer.
pub struct Fields<'a> {
    data: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Fields<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start..end)
    }
}

pub struct CsvRecords {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    /// Most fields a record may have: the header's width once it is read.
    max_fields: usize,
    header_read: bool,
    /// Why the record being read will be dropped (it overflowed a buffer).
    overflow: Option<String>,
    /// Between records: the next byte that is not a line end starts one.
    at_record_start: bool,
    record_line: u64,
    /// Line ends skipped here between records, which `core` never saw.
    skipped_lines: u64,
    /// The first bytes, held until it is known whether they are a UTF-8 BOM.
    head: Option<Vec<u8>>,
    finished: bool,
}

impl Default for CsvRecords {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvRecords {
    pub fn new() -> Self {
        Self {
            core: csv_core::Reader::new(),
            out: vec![0; 16 * 1024],
            ends: vec![0; MAX_COLUMNS],
            nout: 0,
            nend: 0,
            max_fields: MAX_COLUMNS,
            header_read: false,
            overflow: None,
            at_record_start: true,
            record_line: 1,
            skipped_lines: 0,
            head: Some(Vec::new()),
            finished: false,
        }
    }

    /// Parses the next bytes of the body, calling `on` for each record completed.
    pub fn push(&mut self, input: &[u8], on: &mut dyn FnMut(Event<'_>)) {
        if let Some(head) = self.head.as_mut() {
            head.extend_from_slice(input);
            if head.len() < 3 {
                return;
            }
            let head = self.head.take().unwrap_or_default();
            let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
            self.parse(body, on);
            return;
        }
        self.parse(input, on);
    }

    /// Ends the body: the last record may lack its line end.
    pub fn finish(&mut self, on: &mut dyn FnMut(Event<'_>)) {
        if let Some(head) = self.head.take() {
            let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
            self.parse(body, on);
        }
        if !self.finished {
            self.finished = true;
            self.parse(&[], on);
        }
    }

    fn parse(&mut self, mut input: &[u8], on: &mut dyn FnMut(Event<'_>)) {
        let at_end = input.is_empty();
        loop {
            if self.at_record_start {
                // Blank lines between records are skipped here, so the line a
                // record starts on is known exactly.
                let skip = input.iter().take_while(|b| **b == b'\n' || **b == b'\r').count();
                self.skipped_lines += input[..skip].iter().filter(|b| **b == b'\n').count() as u64;
                input = &input[skip..];
                if input.is_empty() && !at_end {
                    return;
                }
                if at_end {
                    // Nothing after the last line end: no record left.
                    return;
                }
                self.at_record_start = false;
                self.record_line = self.core.line() + self.skipped_lines;
            }
            let max_ends = self.max_fields.min(self.ends.len());
            let (res, nin, nout, nend) = if self.overflow.is_some() {
                // Read to the end of the dropped record, keeping nothing.
                let (mut scratch, mut scratch_ends) = ([0u8; 4096], [0usize; 64]);
                self.core.read_record(input, &mut scratch, &mut scratch_ends)
            } else {
                self.core.read_record(input, &mut self.out[self.nout..], &mut self.ends[self.nend..max_ends])
            };
            input = &input[nin..];
            if self.overflow.is_none() {
                self.nout += nout;
                self.nend += nend;
            }
            use csv_core::ReadRecordResult as R;
            match res {
                R::InputEmpty => {
                    if input.is_empty() {
                        return;
                    }
                }
                R::OutputFull if self.overflow.is_none() => {
                    if self.out.len() >= MAX_RECORD_BYTES {
                        self.overflow = Some(format!("the row is longer than {} KiB", MAX_RECORD_BYTES / 1024));
                    } else {
                        let len = (self.out.len() * 2).min(MAX_RECORD_BYTES);
                        self.out.resize(len, 0);
                    }
                }
                R::OutputEndsFull if self.overflow.is_none() => {
                    self.overflow = Some(if self.header_read {
                        format!("too many columns (the header has {})", self.max_fields)
                    } else {
                        format!("too many columns (more than {MAX_COLUMNS})")
                    });
                }
                R::OutputFull | R::OutputEndsFull => {}
                R::Record => {
                    let line = self.record_line;
                    match self.overflow.take() {
                        Some(reason) => on(Event::Dropped { line, reason }),
                        None => on(Event::Record {
                            line,
                            fields: Fields { data: &self.out[..self.nout], ends: &self.ends[..self.nend] },
                        }),
                    }
                    if !self.header_read {
                        // The first record is the header: no row may be wider.
                        self.header_read = true;
                        self.max_fields = self.nend.clamp(1, MAX_COLUMNS);
                    }
                    self.nout = 0;
                    self.nend = 0;
                    self.at_record_start = true;
                }
                R::End => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(chunks: &[&[u8]]) -> Vec<(u64, Result<Vec<String>, String>)> {
        let mut r = CsvRecords::new();
        let mut got = Vec::new();
        let mut on = |e: Event<'_>| match e {
            Event::Record { line, fields } => got.push((
                line,
                Ok((0..fields.len())
                    .map(|i| String::from_utf8_lossy(fields.get(i).unwrap_or_default()).into_owned())
                    .collect()),
            )),
            Event::Dropped { line, reason } => got.push((line, Err(reason))),
        };
        for c in chunks {
            r.push(c, &mut on);
        }
        r.finish(&mut on);
        got
    }

    fn ok(fields: &[&str]) -> Result<Vec<String>, String> {
        Ok(fields.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_ends_and_lines_count_from_the_file() {
        let csv = b"email,name\r\na@x.org,\"Smith, \"\"Jo\"\"\r\nline two\"\r\n\r\nb@x.org,B";
        let got = records(&[csv]);
        assert_eq!(got[0], (1, ok(&["email", "name"])));
        assert_eq!(got[1], (2, ok(&["a@x.org", "Smith, \"Jo\"\r\nline two"])));
        assert_eq!(got[2], (5, ok(&["b@x.org", "B"])));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn records_split_across_chunks_anywhere_parse_the_same() {
        let csv: &[u8] = b"\xef\xbb\xbfemail,n\n\"a@x.org\",\"q,\nq\"\nb@x.org,2\n";
        let whole = records(&[csv]);
        for cut in 1..csv.len() {
            let (a, b) = csv.split_at(cut);
            assert_eq!(records(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = csv.chunks(1).collect();
        assert_eq!(records(&bytes), whole);
        assert_eq!(whole[0], (1, ok(&["email", "n"])), "the BOM is dropped");
        assert_eq!(whole[2], (4, ok(&["b@x.org", "2"])));
    }

    #[test]
    fn a_row_wider_than_allowed_is_dropped_and_the_next_one_read() {
        let wide = format!("a,b\n{}\nok,1\n", vec!["x"; 10_000].join(","));
        let got = records(&[wide.as_bytes()]);
        assert!(got[1].1.as_ref().unwrap_err().contains("too many columns (the header has 2)"));
        assert_eq!(got[2], (3, ok(&["ok", "1"])));
        let header = vec!["h"; 10_000].join(",");
        assert!(records(&[header.as_bytes()])[0].1.is_err(), "a header is bounded too");
    }

    #[test]
    fn an_unclosed_quote_is_bounded_and_reported() {
        let mut body = b"a,\"".to_vec();
        body.extend(std::iter::repeat(b'x').take(2 * MAX_RECORD_BYTES));
        let got = records(&[&body]);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.as_ref().unwrap_err().contains("longer than"));
    }
}
