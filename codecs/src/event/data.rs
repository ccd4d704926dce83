//! Mixpanel's `data` parameter: the events of a form-encoded `POST` or of a `GET` query, as the official SDKs send
//! them to `/track` and `/import`.
//!
//! Its value is JSON, or that JSON base64-encoded; the JSON is one event (an object) or an array of events. What
//! this returns is a body [`super::parse_batch`] reads: the array as sent, or the single object inside `[` `]`.
//!
//! Base64 as clients really send it: the standard alphabet or the URL-safe one, padding optional, line breaks
//! ignored, and a space read as `+`: the Node SDK puts base64 into a form body without percent-encoding it, so
//! form decoding has already turned its `+` into spaces.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::is_json_whitespace;

/// Why a `data` value holds no events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("the data parameter is empty; send the events as JSON or base64-encoded JSON in data")]
    Empty,
    #[error("the data parameter is neither JSON nor valid base64 ({0}); send an event or an array of events as JSON, plain or base64-encoded")]
    Base64(String),
    #[error("the data parameter holds {0}, not events; send a JSON object (one event) or an array of events")]
    NotEvents(&'static str),
    #[error("malformed JSON in the data parameter: {0}")]
    Malformed(String),
}

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The events of a `data` value, as a body for [`super::parse_batch`] (see the module's documentation).
/// Takes the value by ownership so that an array of plain JSON is returned without a copy.
pub fn decode_data(mut data: Vec<u8>) -> Result<Vec<u8>, DataError> {
    let json = match first_non_whitespace(&data) {
        None => return Err(DataError::Empty),
        Some(b'[' | b'{') => data,
        Some(_) => {
            data.retain(|b| !matches!(b, b'\r' | b'\n'));
            for b in data.iter_mut() {
                *b = match *b {
                    b' ' | b'-' => b'+',
                    b'_' => b'/',
                    other => other,
                };
            }
            let trimmed = data.trim_ascii();
            BASE64.decode(trimmed).map_err(|e| DataError::Base64(e.to_string()))?
        }
    };
    match first_non_whitespace(&json) {
        Some(b'[') => Ok(json),
        Some(b'{') => {
            // One value and nothing after it: `{..},{..}` is not an event, and must not become two.
            serde_json::from_slice::<serde::de::IgnoredAny>(&json).map_err(|e| DataError::Malformed(e.to_string()))?;
            let mut body = Vec::with_capacity(json.len() + 2);
            body.push(b'[');
            body.extend_from_slice(&json);
            body.push(b']');
            Ok(body)
        }
        None => Err(DataError::Empty),
        Some(b'"') => Err(DataError::NotEvents("a JSON string")),
        Some(b'0'..=b'9' | b'-') => Err(DataError::NotEvents("a JSON number")),
        Some(b't' | b'f' | b'n') => Err(DataError::NotEvents("a JSON literal")),
        Some(_) => Err(DataError::NotEvents("neither JSON nor text")),
    }
}

fn first_non_whitespace(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !is_json_whitespace(*b))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::{json, Value};

    use super::*;
    use crate::event::{parse_batch, BatchLimits};

    fn events(body: &[u8]) -> Vec<String> {
        parse_batch(body, &BatchLimits::MIXPANEL).unwrap().into_iter().map(|e| e.event).collect()
    }

    fn one() -> Value {
        json!({"event": "a", "properties": {"time": 1_700_000_000, "token": "t", "n": "x>?~"}})
    }

    #[test]
    fn plain_json_an_object_or_an_array() {
        let array = serde_json::to_vec(&json!([one(), one()])).unwrap();
        assert_eq!(decode_data(array.clone()).unwrap(), array, "an array is passed on as is");
        assert_eq!(events(&decode_data(serde_json::to_vec(&one()).unwrap()).unwrap()), ["a"]);
        assert_eq!(events(&decode_data(b"\n {\"event\":\"b\",\"properties\":{\"time\":1}} ".to_vec()).unwrap()), ["b"]);
    }

    #[test]
    fn base64_in_every_form_clients_send() {
        // `n` makes the standard encoding use both `+` and `/`.
        let json = serde_json::to_vec(&json!([one()])).unwrap();
        let standard = base64::engine::general_purpose::STANDARD.encode(&json);
        assert!(standard.contains('+') || standard.contains('/'), "{standard}");
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&json);
        let spaces = standard.replace('+', " ");
        let wrapped: String =
            standard.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
        for text in [&standard, &url_safe, &spaces, &wrapped, &format!("{standard}\n")] {
            assert_eq!(decode_data(text.as_bytes().to_vec()).unwrap(), json, "{text}");
        }
        let single = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&one()).unwrap());
        assert_eq!(events(&decode_data(single.into_bytes()).unwrap()), ["a"]);
    }

    #[test]
    fn what_holds_no_events_is_refused_with_its_reason() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s).into_bytes();
        type Expected = fn(&DataError) -> bool;
        let cases: Vec<(Vec<u8>, Expected)> = vec![
            (b"".to_vec(), |e| matches!(e, DataError::Empty)),
            (b" \n".to_vec(), |e| matches!(e, DataError::Empty)),
            (b"%%%not base64%%%".to_vec(), |e| matches!(e, DataError::Base64(_))),
            (b"eyJldmVudCI6".to_vec().into_iter().chain(*b"!!").collect(), |e| matches!(e, DataError::Base64(_))),
            (b64("\"just a string\""), |e| matches!(e, DataError::NotEvents(_))),
            (b64("42"), |e| matches!(e, DataError::NotEvents(_))),
            (b64("null"), |e| matches!(e, DataError::NotEvents(_))),
            (b64("<xml/>"), |e| matches!(e, DataError::NotEvents(_))),
            (b64("   "), |e| matches!(e, DataError::Empty)),
            (b"{\"event\":\"a\"},{\"event\":\"b\"}".to_vec(), |e| matches!(e, DataError::Malformed(_))),
            (b"{\"event\":".to_vec(), |e| matches!(e, DataError::Malformed(_))),
        ];
        for (data, expected) in cases {
            let shown = String::from_utf8_lossy(&data).into_owned();
            let err = decode_data(data).unwrap_err();
            assert!(expected(&err), "{shown:?}: {err:?}");
        }
    }
}
