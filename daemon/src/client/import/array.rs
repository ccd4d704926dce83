//! Splitting a JSON array file into its elements, each with the file line it starts on, so that it can be sent as
//! NDJSON and a rejected element can be named by its line.

use super::error::ImportError;

/// One element of a JSON array file, with insignificant whitespace removed so it fits on one NDJSON line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayElement {
    /// The line the element starts on (1-based).
    pub line: u64,
    pub json: Vec<u8>,
    /// Offset in the input just past the element.
    pub end: usize,
}

/// Splits a JSON array (`[ev, ev, ...]`, whitespace and a UTF-8 BOM allowed around it) into its elements.
///
/// Only the array's own structure is checked (brackets, commas, strings); each element's JSON is left for the
/// daemon to judge, so a bad element comes back as a `failed_records` entry with its line, like a bad NDJSON line.
/// Removing whitespace never joins two tokens: `1 2` stays `1 2`.
pub fn split_json_array(input: &[u8]) -> Result<Vec<ArrayElement>, ImportError> {
    let malformed = |line, reason| ImportError::MalformedArray { line, reason };
    let mut line = 1u64;
    let mut pos = if input.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    while pos < input.len() && input[pos].is_ascii_whitespace() {
        line += u64::from(input[pos] == b'\n');
        pos += 1;
    }
    if input.get(pos) != Some(&b'[') {
        return Err(malformed(line, "expected `[`"));
    }
    let mut elements = Vec::new();
    let mut current: Option<ArrayElement> = None;
    // Inside `current`: nesting depth, string state, and whether whitespace was dropped since the last kept byte.
    let (mut depth, mut in_string, mut escaped, mut gap) = (0usize, false, false, false);
    let mut closed = false;
    for (offset, &b) in input.iter().enumerate().skip(pos + 1) {
        if closed {
            if !b.is_ascii_whitespace() {
                return Err(malformed(line, "data after the closing `]`"));
            }
            line += u64::from(b == b'\n');
            continue;
        }
        let Some(element) = current.as_mut() else {
            match b {
                b'\n' => line += 1,
                _ if b.is_ascii_whitespace() => {}
                b']' if elements.is_empty() => closed = true,
                b']' => return Err(malformed(line, "`,` followed by `]` (trailing comma)")),
                b',' => return Err(malformed(line, "missing element before `,`")),
                _ => {
                    current = Some(ArrayElement { line, json: vec![b], end: offset + 1 });
                    match b {
                        b'"' => in_string = true,
                        b'[' | b'{' => depth = 1,
                        _ => {}
                    }
                }
            }
            continue;
        };
        if in_string {
            line += u64::from(b == b'\n');
            element.json.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b',' | b']' if depth == 0 => {
                let mut done = current.take().expect("inside an element");
                done.end = offset;
                elements.push(done);
                gap = false;
                closed = b == b']';
                continue;
            }
            b'\n' => {
                line += 1;
                gap = true;
                continue;
            }
            _ if b.is_ascii_whitespace() => {
                gap = true;
                continue;
            }
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if gap && element.json.last().is_some_and(|&last| is_word_byte(last)) && is_word_byte(b) {
            element.json.push(b' ');
        }
        gap = false;
        element.json.push(b);
    }
    if !closed {
        return Err(malformed(line, "the array is not closed (missing `]`, or an unterminated string)"));
    }
    Ok(elements)
}

/// Bytes that can be part of a bare JSON token (number, `true`, ...): two of them must not be glued together.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
}
