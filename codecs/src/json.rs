//! Canonical JSON text computed straight from JSON text, without building a `serde_json::Value`.
//!
//! The canonical text of a JSON value is what `serde_json::to_string` writes for the `Value` that
//! `serde_json::from_str` parses from it: no whitespace, object keys in sorted (bytewise) order as serde_json's
//! `Map` keeps them, strings escaped and numbers written exactly as serde_json writes the values it parsed (so `1.50`
//! becomes `1.5`, `1E2` becomes `100.0`, `-0` becomes `-0.0`). The row format stores properties as this text and the
//! derived `$insert_id` hashes it, so the ingest path ([`crate::event`]) can validate, store and hash properties
//! without allocating a tree of values.
//!
//! This module is deliberately partial. Its one invariant: **whenever it returns text, serde_json accepts the input
//! and that text is exactly serde_json's canonical text for it.** On anything it does not handle exactly, it returns
//! [`GiveUp`]: invalid JSON, including numbers serde_json rejects (floats beyond `f64`'s range; it never reproduces
//! serde_json's error messages), duplicate keys (serde_json keeps the last one), and nesting deeper than
//! [`MAX_DEPTH`]. The caller then falls back to serde_json, which decides.
//!
//! The input is a `&str`, so it is valid UTF-8: any string the scanner copies is valid UTF-8 and any position it
//! slices at is next to an ASCII delimiter, hence a char boundary.

use std::fmt::Write as _;
use std::ops::Range;

use serde_json::Number;

/// The scanner cannot vouch for the input; the caller must use serde_json to decide (and to word any error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GiveUp;

/// Containers (arrays and objects, counting the enclosing ones the caller reports) nested deeper than this are
/// left to serde_json. Stopping well short of serde_json's own recursion limit (128) keeps the two from ever
/// disagreeing on where the limit is.
pub(crate) const MAX_DEPTH: usize = 100;

/// A position in JSON text.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// A JSON string as it appears in the text, between its quotes (validated: no raw control characters, every escape
/// well-formed, `\u` surrogates paired).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawStr<'a> {
    /// The text between the quotes.
    raw: &'a str,
    /// The text with its quotes.
    quoted: &'a str,
    /// The text has at least one `\` escape, so it differs from the decoded string.
    escaped: bool,
    /// Every escape is one serde_json itself writes, so the raw text is already canonical.
    canonical: bool,
}

/// A JSON number token as it appears in the text (validated against the JSON grammar).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawNumber<'a> {
    token: &'a str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// The byte offset of the next unread byte (whitespace included).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return) and returns the next byte, if any.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes().get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Skips whitespace and consumes `expected` if it comes next.
    pub(crate) fn eat(&mut self, expected: u8) -> bool {
        if self.peek() == Some(expected) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, expected: u8) -> Result<(), GiveUp> {
        if self.eat(expected) {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// Consumes `literal` (`null`, `true`, `false`) after whitespace.
    pub(crate) fn literal(&mut self, literal: &str) -> Result<(), GiveUp> {
        self.peek();
        if self.text[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// Reads a string after whitespace, validating it as serde_json does when it parses a `String`.
    pub(crate) fn string(&mut self) -> Result<RawStr<'a>, GiveUp> {
        self.expect(b'"')?;
        let bytes = self.bytes();
        let start = self.pos;
        let mut escaped = false;
        let mut canonical = true;
        loop {
            self.pos = skip_plain_string_bytes(bytes, self.pos);
            let b = *bytes.get(self.pos).ok_or(GiveUp)?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    canonical &= self.escape()?;
                }
                0x00..=0x1f => return Err(GiveUp),
                _ => {}
            }
        }
        Ok(RawStr { raw: &self.text[start..self.pos - 1], quoted: &self.text[start - 1..self.pos], escaped, canonical })
    }

    /// Reads an object after whitespace: `{`, its entries separated by `,`, then `}`. `entry` gets each key with
    /// the cursor just after its `:` and must read the value. Every object reader ([`Canonicalizer::object`], the
    /// ingest fast path's record reader) walks the object grammar through here.
    pub(crate) fn object_entries(
        &mut self,
        mut entry: impl FnMut(&mut Self, RawStr<'a>) -> Result<(), GiveUp>,
    ) -> Result<(), GiveUp> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            entry(self, key)?;
            if self.eat(b'}') {
                return Ok(());
            }
            self.expect(b',')?;
        }
    }

    /// Validates the escape after a `\`; returns whether serde_json would write it exactly so.
    fn escape(&mut self) -> Result<bool, GiveUp> {
        let bytes = self.bytes();
        let b = *bytes.get(self.pos).ok_or(GiveUp)?;
        self.pos += 1;
        match b {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(true),
            b'/' => Ok(false),
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    // A trailing surrogate first: serde_json rejects it.
                    0xDC00..=0xDFFF => Err(GiveUp),
                    0xD800..=0xDBFF => {
                        if bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(GiveUp);
                        }
                        self.pos += 2;
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(false),
                            _ => Err(GiveUp),
                        }
                    }
                    // serde_json writes these control characters as `\u00XX` with lowercase hex digits.
                    0x00..=0x1f if !matches!(unit, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) => {
                        Ok(!bytes[self.pos - 4..self.pos].iter().any(u8::is_ascii_uppercase))
                    }
                    _ => Ok(false),
                }
            }
            _ => Err(GiveUp),
        }
    }

    fn hex4(&mut self) -> Result<u16, GiveUp> {
        let digits = self.bytes().get(self.pos..self.pos + 4).ok_or(GiveUp)?;
        let mut unit = 0u16;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or(GiveUp)?;
            unit = unit << 4 | v as u16;
        }
        self.pos += 4;
        Ok(unit)
    }

    /// Reads a number after whitespace, validating it against the JSON grammar
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub(crate) fn number(&mut self) -> Result<RawNumber<'a>, GiveUp> {
        self.peek();
        let bytes = self.bytes();
        let start = self.pos;
        let digits = |pos: &mut usize| {
            let from = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - from
        };
        let mut pos = start;
        if bytes.get(pos) == Some(&b'-') {
            pos += 1;
        }
        match bytes.get(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => {
                digits(&mut pos);
            }
            _ => return Err(GiveUp),
        }
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            if digits(&mut pos) == 0 {
                return Err(GiveUp);
            }
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            if digits(&mut pos) == 0 {
                return Err(GiveUp);
            }
        }
        self.pos = pos;
        Ok(RawNumber { token: &self.text[start..pos] })
    }
}

/// The position of the first byte at or after `pos` that ends a run of plain string bytes: a quote, a backslash or
/// a control character (or the end). Eight bytes at a time, as serde_json does: most strings have no escapes.
fn skip_plain_string_bytes(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = u64::MAX / 255; // 0x0101..01
    const HIGH: u64 = ONES << 7; // 0x8080..80

    // The high bit of each byte of `word` that is below `n` (n <= 0x80), by the classic "has a zero byte" trick. A
    // byte just above a flagged byte may be flagged too (a borrow), which is harmless: the lowest flag is exact.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let found =
            below(word, 0x20) | below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1);
        if found != 0 {
            return pos + found.trailing_zeros() as usize / 8;
        }
        pos += 8;
    }
    while bytes.get(pos).is_some_and(|&b| b >= 0x20 && b != b'"' && b != b'\\') {
        pos += 1;
    }
    pos
}

impl<'a> RawStr<'a> {
    /// The decoded string when it has no escapes (the common case): a slice of the input.
    pub(crate) fn unescaped(&self) -> Option<&'a str> {
        (!self.escaped).then_some(self.raw)
    }

    /// Appends the decoded string to `out`.
    pub(crate) fn decode_into(&self, out: &mut String) {
        if !self.escaped {
            out.push_str(self.raw);
            return;
        }
        let mut rest = self.raw;
        while let Some(at) = rest.find('\\') {
            out.push_str(&rest[..at]);
            let escape = rest.as_bytes()[at + 1];
            rest = &rest[at + 2..];
            let c = match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\x08',
                b'f' => '\x0c',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                _ => {
                    // `\uXXXX`, possibly a surrogate pair; `Cursor::string` validated both.
                    let hex = |s: &str| u32::from_str_radix(&s[..4], 16).unwrap_or(0xFFFD);
                    let mut unit = hex(rest);
                    rest = &rest[4..];
                    if (0xD800..=0xDBFF).contains(&unit) {
                        unit = 0x1_0000 + ((unit - 0xD800) << 10) + (hex(&rest[2..]) - 0xDC00);
                        rest = &rest[6..];
                    }
                    char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            };
            out.push(c);
        }
        out.push_str(rest);
    }

    /// Appends the string as serde_json writes it, quotes included.
    pub(crate) fn write_canonical(&self, out: &mut String, scratch: &mut Scratch) -> Result<(), GiveUp> {
        if self.canonical {
            out.push_str(self.quoted);
            return Ok(());
        }
        scratch.decoded.clear();
        self.decode_into(&mut scratch.decoded);
        scratch.encoded.clear();
        serde_json::to_writer(&mut scratch.encoded, scratch.decoded.as_str()).map_err(|_| GiveUp)?;
        out.push_str(std::str::from_utf8(&scratch.encoded).map_err(|_| GiveUp)?);
        Ok(())
    }
}

/// Buffers for re-escaping strings whose escapes serde_json writes differently.
#[derive(Default)]
pub(crate) struct Scratch {
    decoded: String,
    encoded: Vec<u8>,
}

impl<'a> RawNumber<'a> {
    /// The number as serde_json parses it, or `GiveUp` when serde_json rejects it (a float out of range).
    pub(crate) fn to_number(self) -> Result<Number, GiveUp> {
        if let Some(n) = self.as_plain_u64() {
            return Ok(Number::from(n));
        }
        serde_json::from_str(self.token).map_err(|_| GiveUp)
    }

    /// The value of a token of at most 19 digits with no sign, fraction or exponent: serde_json reads exactly these
    /// (and longer ones that fit) as `u64`.
    fn as_plain_u64(&self) -> Option<u64> {
        let t = self.token.as_bytes();
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(t.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    }

    /// Whether serde_json writes this token back unchanged: an integer that it reads as `u64` or `i64` (so not
    /// `-0`, which it reads as the float `-0.0`).
    fn is_canonical(&self) -> bool {
        let (negative, digits) = match self.token.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, self.token),
        };
        let max_digits = if negative { 18 } else { 19 };
        digits.len() <= max_digits
            && digits.bytes().all(|d| d.is_ascii_digit())
            && !(negative && digits.starts_with('0'))
    }

    pub(crate) fn write_canonical(&self, out: &mut String) -> Result<(), GiveUp> {
        if self.is_canonical() {
            out.push_str(self.token);
            return Ok(());
        }
        // `Number`'s `Display` is what serde_json's serializer writes (itoa for integers, the same shortest
        // round-trip float formatting); the differential tests pin this.
        write!(out, "{}", self.to_number()?).map_err(|_| GiveUp)
    }
}

/// The entries of one object being canonicalized: written in input order, emitted in key order.
#[derive(Default)]
struct ObjectFrame {
    /// `"key":value` of each entry, canonical, back to back.
    text: String,
    /// The decoded keys of entries whose written key has escapes, back to back.
    decoded_keys: String,
    entries: Vec<Entry>,
}

struct Entry {
    /// The decoded key (the sort key): in `decoded_keys` when `key_decoded`, else inside the entry's own text
    /// (an unescaped key is its own decoding).
    key: Range<usize>,
    key_decoded: bool,
    /// The key's first 8 bytes, big-endian, zero-padded: comparing these first orders most keys without a memcmp
    /// (a zero pad never misorders: keys whose prefixes tie are compared in full).
    prefix: u64,
    text: Range<usize>,
}

impl Entry {
    fn new(key: Range<usize>, key_decoded: bool, key_bytes: &[u8], text: Range<usize>) -> Self {
        let mut prefix = [0u8; 8];
        let n = key_bytes.len().min(8);
        prefix[..n].copy_from_slice(&key_bytes[..n]);
        Self { key, key_decoded, prefix: u64::from_be_bytes(prefix), text }
    }
}

impl ObjectFrame {
    fn clear(&mut self) {
        self.text.clear();
        self.decoded_keys.clear();
        self.entries.clear();
    }

    /// Appends `{entries}` in key order; gives up on a duplicate key (serde_json would keep the last one).
    fn emit_sorted(&mut self, out: &mut String) -> Result<(), GiveUp> {
        let (text, decoded_keys) = (self.text.as_bytes(), self.decoded_keys.as_bytes());
        let key = |e: &Entry| if e.key_decoded { &decoded_keys[e.key.clone()] } else { &text[e.key.clone()] };
        let order = |a: &Entry, b: &Entry| a.prefix.cmp(&b.prefix).then_with(|| key(a).cmp(key(b)));
        let entries = &mut self.entries;
        if !entries.windows(2).all(|w| order(&w[0], &w[1]).is_lt()) {
            entries.sort_unstable_by(order);
            if entries.windows(2).any(|w| order(&w[0], &w[1]).is_eq()) {
                return Err(GiveUp);
            }
        }
        out.push('{');
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&self.text[entry.text.clone()]);
        }
        out.push('}');
        Ok(())
    }
}

/// Writes canonical JSON; keeps its buffers from value to value, so a batch allocates them once.
#[derive(Default)]
pub(crate) struct Canonicalizer {
    /// One frame per nesting depth, reused.
    frames: Vec<ObjectFrame>,
    scratch: Scratch,
}

/// What [`Canonicalizer::object`] does with one entry's value: the caller may take it out of the object.
pub(crate) trait EntryFilter<'a> {
    /// Called with the decoded key before the value is read. Returning `Ok(true)` means the callee consumed the
    /// value from `cursor` and the entry is left out of the canonical object; `Ok(false)` keeps it.
    fn take(&mut self, key: &str, cursor: &mut Cursor<'a>) -> Result<bool, GiveUp>;
}

/// Keeps every entry.
pub(crate) struct KeepAll;

impl<'a> EntryFilter<'a> for KeepAll {
    fn take(&mut self, _key: &str, _cursor: &mut Cursor<'a>) -> Result<bool, GiveUp> {
        Ok(false)
    }
}

impl Canonicalizer {
    /// Reads one value at `cursor` and appends its canonical text to `out`. `depth` is the number of containers
    /// already open around it.
    pub(crate) fn value<'a>(&mut self, cursor: &mut Cursor<'a>, out: &mut String, depth: usize) -> Result<(), GiveUp> {
        match cursor.peek().ok_or(GiveUp)? {
            b'"' => cursor.string()?.write_canonical(out, &mut self.scratch),
            b'-' | b'0'..=b'9' => cursor.number()?.write_canonical(out),
            b'{' => self.object(cursor, out, depth + 1, &mut KeepAll),
            b'[' => self.array(cursor, out, depth + 1),
            b'n' => cursor.literal("null").map(|()| out.push_str("null")),
            b't' => cursor.literal("true").map(|()| out.push_str("true")),
            b'f' => cursor.literal("false").map(|()| out.push_str("false")),
            _ => Err(GiveUp),
        }
    }

    fn array<'a>(&mut self, cursor: &mut Cursor<'a>, out: &mut String, depth: usize) -> Result<(), GiveUp> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        cursor.expect(b'[')?;
        out.push('[');
        if !cursor.eat(b']') {
            loop {
                self.value(cursor, out, depth)?;
                if cursor.eat(b']') {
                    break;
                }
                cursor.expect(b',')?;
                out.push(',');
            }
        }
        out.push(']');
        Ok(())
    }

    /// Reads an object at `cursor` (whose own level is `depth`) and appends its canonical text, without the
    /// entries `filter` takes, to `out`.
    pub(crate) fn object<'a>(
        &mut self,
        cursor: &mut Cursor<'a>,
        out: &mut String,
        depth: usize,
        filter: &mut impl EntryFilter<'a>,
    ) -> Result<(), GiveUp> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        if self.frames.len() <= depth {
            self.frames.resize_with(depth + 1, ObjectFrame::default);
        }
        // The frame is moved out while its entries are read, so nested objects can use deeper frames.
        let mut frame = std::mem::take(&mut self.frames[depth]);
        frame.clear();
        let read = cursor.object_entries(|cursor, key| {
            let decoded = match key.unescaped() {
                Some(_) => None,
                None => {
                    let start = frame.decoded_keys.len();
                    key.decode_into(&mut frame.decoded_keys);
                    Some(start..frame.decoded_keys.len())
                }
            };
            let key_str = match &decoded {
                Some(range) => &frame.decoded_keys[range.clone()],
                None => key.raw,
            };
            if !filter.take(key_str, cursor)? {
                let text_start = frame.text.len();
                key.write_canonical(&mut frame.text, &mut self.scratch)?;
                frame.text.push(':');
                self.value(cursor, &mut frame.text, depth)?;
                let text = text_start..frame.text.len();
                let entry = match decoded {
                    Some(key) => Entry::new(key.clone(), true, &frame.decoded_keys.as_bytes()[key], text),
                    // Just inside the opening quote of the written key.
                    None => Entry::new(text_start + 1..text_start + 1 + key.raw.len(), false, key.raw.as_bytes(), text),
                };
                frame.entries.push(entry);
            }
            Ok(())
        });
        let result = read.and_then(|()| frame.emit_sorted(out));
        self.frames[depth] = frame;
        result
    }
}

/// The canonical text of the JSON document `text` (one value, surrounded by whitespace at most).
#[cfg(test)]
pub(crate) fn canonical(text: &str) -> Result<String, GiveUp> {
    let mut cursor = Cursor::new(text);
    let mut out = String::new();
    Canonicalizer::default().value(&mut cursor, &mut out, 0)?;
    if cursor.peek().is_some() {
        return Err(GiveUp);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
