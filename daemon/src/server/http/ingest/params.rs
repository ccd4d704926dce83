//! The parameters of an ingest request, from its query string and, for a form-encoded body, from the form: Mixpanel's
//! clients put them in either (the Python SDK sends `data`, `verbose` and `ip` in the form, the Node SDK `verbose`
//! and `ip` in the query and `data` in the form). A parameter given in both is the form's.
//!
//! Values are read as bytes (`+` is a space, `%XX` a byte), not as text: `data` is JSON, whose UTF-8 the parser
//! checks, instead of being patched with replacement characters by a lossy decode.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use super::super::error::ApiError;

/// What an ingest request asked for. Unknown keys (`api_key`, `test`, `_`, ...) are ignored, as Mixpanel does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    /// The events: JSON or base64-encoded JSON ([`tierd_codecs::decode_data`]).
    pub data: Option<Vec<u8>>,
    /// `project=NAME`: the project written to (else `default`).
    pub project: Option<String>,
    /// `project_id=ID`: the project a service account writes to (`/import`).
    pub project_id: Option<String>,
    /// `strict=0|1`: whether one invalid record refuses the whole batch (the default) or only itself.
    pub strict: Option<bool>,
    /// `verbose=0|1`: a JSON answer with the error, instead of `1` or `0` (the data-parameter dialect).
    pub verbose: Option<bool>,
    /// `ip=0|1`: record the client's address as the `ip` property (where `ingest.keep_client_ip` allows it).
    pub ip: Option<bool>,
    /// A form body's pairs were read into these (until then, `verbose` may still be in the form).
    pub form_read: bool,
}

impl Params {
    /// Reads the `key=value` pairs of a query string or a form body; a key read again replaces its value.
    pub fn read(&mut self, text: &[u8]) -> Result<(), ApiError> {
        for pair in text.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            match decoded(key).as_ref() {
                b"data" => self.data = Some(decoded(value).into_owned()),
                b"project" => self.project = Some(utf8("project", value)?),
                b"project_id" => self.project_id = Some(utf8("project_id", value)?),
                b"strict" => self.strict = Some(flag("strict", value)?),
                b"verbose" => self.verbose = Some(flag("verbose", value)?),
                b"ip" => self.ip = Some(flag("ip", value)?),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A parameter that must be text.
fn utf8(key: &str, value: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(decoded(value).into_owned())
        .map_err(|_| ApiError::bad_request(format!("the {key} parameter is not valid UTF-8")))
}

/// A form-encoded part: `+` is a space, `%XX` the byte XX (a `%` not followed by two hex digits is kept as is).
fn decoded(part: &[u8]) -> Cow<'_, [u8]> {
    if part.contains(&b'+') {
        let spaced: Vec<u8> = part.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
        return Cow::Owned(percent_decode(&spaced).collect());
    }
    percent_decode(part).into()
}

/// A `0`/`1` parameter (`true`/`false` too; empty is `0`, as a bare `verbose` would otherwise be).
fn flag(key: &str, value: &[u8]) -> Result<bool, ApiError> {
    match decoded(value).as_ref() {
        b"1" | b"true" => Ok(true),
        b"0" | b"false" | b"" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{key} must be 0 or 1, got {:?}",
            String::from_utf8_lossy(&other[..other.len().min(32)])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(parts: &[&str]) -> Result<Params, ApiError> {
        let mut p = Params::default();
        for text in parts {
            p.read(text.as_bytes())?;
        }
        Ok(p)
    }

    #[test]
    fn query_and_form_pairs_are_decoded_and_the_later_one_wins() {
        let p = read(&["verbose=0&ip=1&data=abc&api_key=k&test=1", "data=%7B%22a%22%3A+1%7D&verbose=1"]).unwrap();
        assert_eq!(p.data.as_deref(), Some(&b"{\"a\": 1}"[..]));
        assert_eq!((p.verbose, p.ip, p.strict), (Some(true), Some(true), None));
        let p = read(&["project=web%20site&strict=false&data=eyJ+/w=="]).unwrap();
        assert_eq!(p.project.as_deref(), Some("web site"));
        assert_eq!(p.strict, Some(false));
        // The Node SDK's unencoded base64: `+` became a space, which the data decoder reads back as `+`.
        assert_eq!(p.data.as_deref(), Some(&b"eyJ /w=="[..]));
        // Bytes, not text: invalid UTF-8 survives for the JSON parser to refuse.
        assert_eq!(read(&["data=%FF%FE"]).unwrap().data.as_deref(), Some(&[0xFF, 0xFE][..]));
        assert_eq!(read(&["data=100%"]).unwrap().data.as_deref(), Some(&b"100%"[..]));
        assert_eq!(read(&["&&verbose&"]).unwrap().verbose, Some(false));
    }

    #[test]
    fn bad_flags_and_names_are_refused_with_the_key() {
        for (text, needle) in
            [("strict=2", "strict"), ("verbose=yes", "verbose"), ("ip=%FF", "ip"), ("project=%FF", "project")]
        {
            let err = read(&[text]).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
    }
}
