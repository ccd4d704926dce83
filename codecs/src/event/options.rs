//! How one request's records are read, beyond the body itself: whether one invalid record refuses the whole batch
//! (`strict`, `/import`'s default) or only itself, and what a record may leave out because the request supplies it
//! (`/track`: the receive time, the client address).
//!
//! The rules of a valid record stay those of [`super::parse_batch`]; this only chooses what happens to the invalid
//! ones and fills in what is missing before the rules apply. Both run on the reference path
//! ([`super::parse_batch_reference`]'s), one record at a time, so a lenient batch costs no more memory than a strict
//! one; a request with nothing to fill in first tries the fast path, which accepts only batches with no invalid
//! record, exactly as [`super::parse_batch_rows`].

use serde_json::{Map, Value};

use super::{checked_record, fast, scan, BatchError, BatchLimits, RecordError, RowBatch};

/// What a record gets when it lacks it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordDefaults {
    /// The event time of a record whose `properties.time` is absent or null, in milliseconds since the epoch
    /// (`/track`: when the request was received). `None`: such a record is invalid, as on `/import`.
    pub time_ms: Option<i64>,
    /// Properties added to a record that does not have them (a record's own value wins). They count towards
    /// [`BatchLimits::max_properties`] like the record's own.
    pub properties: Map<String, Value>,
}

impl RecordDefaults {
    /// Nothing to fill in.
    pub fn is_empty(&self) -> bool {
        self.time_ms.is_none() && self.properties.is_empty()
    }

    /// Adds the missing default properties to `properties`; returns the default time when the record has none
    /// (and then removes its null `time`, if any).
    pub(super) fn fill(&self, properties: &mut Map<String, Value>) -> Option<i64> {
        for (key, value) in &self.properties {
            if !properties.contains_key(key) {
                properties.insert(key.clone(), value.clone());
            }
        }
        let default_time = self.time_ms.filter(|_| matches!(properties.get("time"), None | Some(Value::Null)));
        if default_time.is_some() {
            properties.remove("time");
        }
        default_time
    }
}

/// How [`parse_batch_rows_with`] reads a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseOptions {
    /// `true`: any invalid record refuses the batch ([`BatchError::Invalid`], nothing accepted). `false`: the
    /// invalid records are left out and reported in [`ParsedBatch::rejected`], the valid ones accepted.
    pub strict: bool,
    pub defaults: RecordDefaults,
}

impl Default for ParseOptions {
    /// Strict, nothing filled in: [`super::parse_batch_rows`].
    fn default() -> Self {
        Self { strict: true, defaults: RecordDefaults::default() }
    }
}

/// The accepted rows of a request, and the records left out (only when not strict).
#[derive(Debug, Clone, Default)]
pub struct ParsedBatch {
    pub rows: RowBatch,
    /// The invalid records, by their index in the request, in order.
    pub rejected: Vec<RecordError>,
}

/// Validates a request body as [`super::parse_batch_rows`] does, reading its records as `options` say.
///
/// Whatever the options, a body that is too large, empty, malformed or over the event count is refused whole: its
/// records cannot be told apart safely. With `strict` and default-less options the result is exactly
/// [`super::parse_batch_rows`]'s (rows, or the same [`BatchError::Invalid`]).
pub fn parse_batch_rows_with(
    body: &[u8],
    limits: &BatchLimits,
    options: &ParseOptions,
) -> Result<ParsedBatch, BatchError> {
    if options.defaults.is_empty() {
        // The fast path accepts only bodies whose every record is valid, so strictness does not matter to it.
        if let Ok(rows) = fast::parse_rows(body, limits) {
            return Ok(ParsedBatch { rows, rejected: Vec::new() });
        }
    }
    let mut parsed = ParsedBatch::default();
    scan::for_each_record(body, limits, |index, record| {
        match checked_record(index, record, limits, &options.defaults) {
            // Strict: once a record failed, the batch is refused; building more rows would be wasted.
            Ok(_) if options.strict && !parsed.rejected.is_empty() => {}
            Ok(event) => parsed.rows.push_event(&event),
            Err(error) => parsed.rejected.push(error),
        }
    })?;
    if options.strict && !parsed.rejected.is_empty() {
        return Err(BatchError::Invalid(parsed.rejected));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests;
