use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::testing::json_value;

/// serde_json's answer: the canonical text of `text`, or `None` when it rejects it.
fn reference(text: &str) -> Option<String> {
    serde_json::from_str::<Value>(text).ok().map(|v| serde_json::to_string(&v).expect("a Value serializes"))
}

/// The invariant of this module: whatever `canonical` returns, serde_json accepts `text` and writes exactly that.
fn check_agrees(text: &str) -> Result<Option<String>, TestCaseError> {
    let ours = canonical(text).ok();
    if let Some(ours) = &ours {
        let theirs = reference(text);
        prop_assert_eq!(Some(ours), theirs.as_ref(), "input {:?}", text);
    }
    Ok(ours)
}

/// `canonical(text)` handles `text` and agrees with serde_json.
fn assert_handles(text: &str, expected: &str) {
    assert_eq!(canonical(text).as_deref(), Ok(expected), "input {text:?}");
    assert_eq!(reference(text).as_deref(), Some(expected), "input {text:?}: the expectation itself is wrong");
}

/// `canonical(text)` gives up; `rejected` says whether serde_json rejects `text` (else it is a case left to it).
fn assert_gives_up(text: &str, rejected: bool) {
    assert_eq!(canonical(text), Err(GiveUp), "input {text:?}");
    assert_eq!(reference(text).is_none(), rejected, "input {text:?}");
}

#[test]
fn scalars() {
    assert_handles("null", "null");
    assert_handles(" true ", "true");
    assert_handles("false", "false");
    assert_handles("0", "0");
    assert_handles("-7", "-7");
    assert_handles("18446744073709551615", "18446744073709551615");
    assert_handles("-9223372036854775808", "-9223372036854775808");
    assert_handles("\"plain ✓ text\"", "\"plain ✓ text\"");
}

#[test]
fn numbers_are_written_as_serde_json_writes_what_it_parsed() {
    assert_handles("1.50", "1.5");
    assert_handles("1E2", "100.0");
    assert_handles("1e+2", "100.0");
    assert_handles("2.5e-3", "0.0025");
    assert_handles("-0", "-0.0");
    assert_handles("-0.0", "-0.0");
    assert_handles("0.1", "0.1");
    assert_handles("1e15", "1000000000000000.0");
    assert_handles("1e16", "1e+16");
    assert_handles("0.000001", "1e-6");
    assert_handles("123456789012345678901234567890", "1.2345678901234568e+29");
    assert_handles("18446744073709551616", "1.8446744073709552e+19");
    assert_handles("-9223372036854775809", "-9.223372036854776e+18");
    assert_handles("1.7976931348623157e308", "1.7976931348623157e+308");
    assert_handles("1e-400", "0.0");
    assert_handles("5e-324", "5e-324");
}

#[test]
fn strings_are_escaped_as_serde_json_escapes() {
    assert_handles(r#""a\"b\\c\nd\te\rf\bg\fh""#, r#""a\"b\\c\nd\te\rf\bg\fh""#);
    assert_handles(r#""\/""#, r#""/""#);
    assert_handles(r#""\u00e9\u00E9""#, "\"éé\"");
    assert_handles(r#""\u0001\u001f\u001F""#, r#""\u0001\u001f\u001f""#);
    assert_handles(r#""\u0008\u000a""#, r#""\b\n""#);
    assert_handles(r#""\u007f""#, "\"\u{7f}\"");
    assert_handles(r#""\ud83d\ude00""#, "\"😀\"");
    assert_handles(r#""\u0000""#, r#""\u0000""#);
}

#[test]
fn objects_are_sorted_and_compact() {
    assert_handles(
        r#" { "b" : 1 , "a" : [ 1 , { "d" : null , "c" : "x" } ] , "" : {} } "#,
        r#"{"":{},"a":[1,{"c":"x","d":null}],"b":1}"#,
    );
    // Keys compare decoded, bytewise: "\n" sorts before "A", "é" after "z".
    assert_handles(r#"{"z":1,"\u00e9":2,"A":3,"\n":4}"#, "{\"\\n\":4,\"A\":3,\"z\":1,\"é\":2}");
    assert_handles("[]", "[]");
    assert_handles("{}", "{}");
}

#[test]
fn invalid_json_is_left_to_serde_json() {
    for text in [
        "",
        " ",
        "nul",
        "tru",
        "nulll",
        "[1,]",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":}",
        "[",
        "{",
        "]",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "--1",
        "\"abc",
        "\"a\\x\"",
        "\"a\\u12\"",
        "\"a\\u12G4\"",
        "\"a\u{1}b\"",
        "\"tab\there\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\ud800\\n\"",
        "1 2",
        "[1] x",
        "{\"a\":1}}",
        "NaN",
        "Infinity",
        "1e400",
        "-1e400",
        "[1e309]",
    ] {
        assert_gives_up(text, true);
    }
    // A number with more than 308 integer digits overflows to infinity: serde_json rejects it.
    assert_gives_up(&format!("1{}", "0".repeat(309)), true);
}

#[test]
fn valid_json_it_does_not_handle_is_left_to_serde_json() {
    // serde_json keeps the last of repeated keys; that is left to it.
    assert_gives_up(r#"{"a":1,"a":2}"#, false);
    assert_gives_up(r#"{"a":1,"\u0061":2}"#, false);
    assert_gives_up(r#"[{"x":{"b":1,"a":2,"b":3}}]"#, false);
    // Nesting: up to MAX_DEPTH containers are handled, deeper ones are left to serde_json (whose limit is 127).
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_handles(&nested(MAX_DEPTH), &nested(MAX_DEPTH));
    assert_gives_up(&nested(MAX_DEPTH + 1), false);
    let nested_objects = |depth: usize| format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth));
    assert_handles(&nested_objects(MAX_DEPTH), &nested_objects(MAX_DEPTH));
    assert_gives_up(&nested_objects(MAX_DEPTH + 1), false);
}

#[test]
fn string_scanning_finds_delimiters_at_every_offset() {
    // The scanner reads 8 bytes at a time: put the closing quote, an escape and a control character at every
    // position of a chunk, after multi-byte characters too.
    for prefix in ["", "é", "😀", "abc"] {
        for len in 0..20 {
            let body = format!("{prefix}{}", "x".repeat(len));
            assert_handles(&format!("\"{body}\""), &format!("\"{body}\""));
            assert_handles(&format!("\"{body}\\\"\""), &format!("\"{body}\\\"\""));
            assert_gives_up(&format!("\"{body}\u{1f}\""), true);
            assert_gives_up(&format!("\"{body}"), true);
        }
    }
}

/// JSON text for `value` in another style than serde_json's: keys in reverse order, every non-ASCII character and
/// `/` escaped (with upper or lower case hex), floats in exponent form. It parses back to `value`, so its canonical
/// text is `serde_json::to_string(value)`.
fn restyled(value: &Value, upper_hex: bool, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) => out.push_str(&value.to_string()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => out.push_str(&format!("{f:e}")),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '/' => out.push_str("\\/"),
                    ' '..='~' => out.push(c),
                    _ => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&if upper_hex { format!("\\u{unit:04X}") } else { format!("\\u{unit:04x}") });
                        }
                    }
                }
            }
            out.push('"');
        }
        Value::Array(items) => {
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n");
                }
                restyled(item, upper_hex, out);
            }
            out.push_str(" ]");
        }
        Value::Object(map) => {
            out.push_str("{\t");
            for (i, (key, item)) in map.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(",\r\n");
                }
                restyled(&Value::String(key.clone()), upper_hex, out);
                out.push_str(" : ");
                restyled(item, upper_hex, out);
            }
            out.push('}');
        }
    }
}

/// Characters that matter to a JSON scanner, for mutations.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"\"\\{}[],:0123456789-+.eEuntrfl/ \n\t\r\x01\x1f".to_vec()),
        any::<u8>().prop_filter("ASCII keeps the text UTF-8", u8::is_ascii),
    ]
}

/// Up to three edits of `text`: insert, delete or replace one byte (kept UTF-8: edits at char boundaries only).
fn mutated(text: String) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((0..3u8, any::<prop::sample::Index>(), interesting_byte()), 1..4);
    edits.prop_map(move |edits| {
        let mut text = text.clone();
        for (kind, at, byte) in edits {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let at = boundaries[at.index(boundaries.len())];
            let next = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            let byte = char::from(byte).to_string();
            match kind {
                0 => text.insert_str(at, &byte),
                1 => text.replace_range(at..next, ""),
                _ => text.replace_range(at..next, &byte),
            }
        }
        text
    })
}

/// Grammar-shaped number tokens, valid or not, with exponents that reach past f64's range.
fn number_token() -> impl Strategy<Value = String> {
    (
        prop::option::of(Just("-")),
        prop_oneof![Just("0".to_owned()), "[1-9][0-9]{0,24}", "0[0-9]{1,3}"],
        prop::option::of("[0-9]{0,20}"),
        prop::option::of((
            prop::sample::select(vec!["e", "E"]),
            prop::sample::select(vec!["", "+", "-"]),
            "[0-9]{0,4}",
        )),
    )
        .prop_map(|(sign, int, frac, exp)| {
            let mut token = format!("{}{int}", sign.unwrap_or(""));
            if let Some(frac) = frac {
                token.push('.');
                token.push_str(&frac);
            }
            if let Some((e, sign, digits)) = exp {
                token.push_str(e);
                token.push_str(sign);
                token.push_str(&digits);
            }
            token
        })
}

/// Strings with escapes, valid or not: any escape letter, and `\u` with any hex (surrogates included).
fn string_token() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z é😀/]{0,3}",
        1 => prop::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\x", "\\", "\u{1}"])
            .prop_map(str::to_owned),
        2 => prop_oneof![0u16..0x80, 0xD800u16..0xE000, any::<u16>()].prop_map(|unit| format!("\\u{unit:04x}")),
        1 => any::<u16>().prop_map(|unit| format!("\\u{unit:04X}")),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn handles_and_agrees_on_serde_json_output(value in json_value()) {
        for text in [serde_json::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
            prop_assert_eq!(canonical(&text), Ok(serde_json::to_string(&value).unwrap()));
        }
    }

    #[test]
    fn handles_and_agrees_on_other_styles(value in json_value(), upper_hex in any::<bool>()) {
        let mut text = String::new();
        restyled(&value, upper_hex, &mut text);
        prop_assert_eq!(check_agrees(&text)?, Some(serde_json::to_string(&value).unwrap()), "input {:?}", text);
    }

    #[test]
    fn never_accepts_what_serde_json_rejects(text in json_value().prop_flat_map(|v| mutated(v.to_string()))) {
        check_agrees(&text)?;
    }

    #[test]
    fn numbers_agree(token in number_token()) {
        check_agrees(&token)?;
        check_agrees(&format!("[{token}]"))?;
    }

    #[test]
    fn strings_agree(token in string_token()) {
        check_agrees(&token)?;
        check_agrees(&format!("{{{token}:{token}}}"))?;
    }
}
