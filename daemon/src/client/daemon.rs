//! Talking to a running daemon: its URL, the HTTP client, and what to tell the user when the daemon cannot be
//! reached or answers with an error. Shared by every client command.

use std::time::Duration;

use anyhow::bail;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The bearer token every request carries, when set: a token of `[[access_tokens]]`, or a loopback daemon's
/// `DATA_DIR/admin.token`.
pub const TOKEN_ENV: &str = "TIERD_TOKEN";

/// A PEM file of CA certificates to trust, besides the system's, for a daemon serving HTTPS with a private CA.
pub const CA_ENV: &str = "TIERD_CA_CERT";

/// Where the daemon listens unless `--url` or `TIERD_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// `--url` and `--json` of the operator commands (`pass`, `gc`, `move`).
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long)]
    pub json: bool,
}

/// Sends one operator request (`GET` without a body, `POST` with `body` as JSON) to `path` on the daemon at `base`
/// and returns the text of a successful answer. An unreachable daemon or an error status is an error that says
/// `what` failed and why. Operator requests may run long (a pass, a move): the timeout is an hour.
pub fn admin_call(base: &str, path: &str, body: Option<&impl Serialize>, what: &str) -> anyhow::Result<String> {
    let url = endpoint(base, path).map_err(anyhow::Error::msg)?;
    let client = http_client(base, Duration::from_secs(3600))?;
    let request = match body {
        Some(body) => client.post(url).json(body),
        None => client.get(url),
    };
    let resp = request.send().map_err(|e| anyhow::anyhow!(unreachable_message(base, &e)))?;
    let status = resp.status();
    let text = resp.text()?;
    if !status.is_success() {
        bail!("{what} failed ({status}): {}{}", server_message(&text), token_hint(status));
    }
    Ok(text)
}

/// Parses an answer and prints it: as received with `json`, else as `format` shows it.
pub fn show<T: DeserializeOwned>(text: &str, json: bool, format: impl FnOnce(&T) -> String) -> anyhow::Result<T> {
    let answer: T = serde_json::from_str(text)?;
    if json {
        println!("{text}");
    } else {
        print!("{}", format(&answer));
    }
    Ok(answer)
}

/// The URL of `path` on the daemon at `base` (`base` may end in `/` and may carry a path prefix).
pub fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, String> {
    let joined = format!("{}{}", base.trim_end_matches('/'), path);
    let url = reqwest::Url::parse(&joined).map_err(|e| format!("invalid daemon URL `{base}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid daemon URL `{base}`: give an http:// or https:// URL"));
    }
    Ok(url)
}

/// The embedded default's admin token, relative to where `tierd serve` without `--data-dir` keeps its data.
const DEFAULT_ADMIN_TOKEN_FILE: &str = "tierd-data/admin.token";

/// The bearer token for the daemon at `base`: `TIERD_TOKEN`, else, for a daemon on this machine (a loopback URL),
/// the embedded default's `./tierd-data/admin.token` when this user can read it, so that the quick start needs no
/// token by hand. A token from that file is never sent elsewhere.
fn bearer_token(base: &str) -> Option<String> {
    token_for(base, std::env::var(TOKEN_ENV).ok(), std::path::Path::new(DEFAULT_ADMIN_TOKEN_FILE))
}

/// [`bearer_token`] with the environment's token and the default token file given.
fn token_for(base: &str, env: Option<String>, default_file: &std::path::Path) -> Option<String> {
    if let Some(token) = env.filter(|t| !t.trim().is_empty()) {
        return Some(token);
    }
    let url = reqwest::Url::parse(base).ok()?;
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    let local = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !local {
        return None;
    }
    let token = std::fs::read_to_string(default_file).ok()?;
    Some(token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The HTTP client of every command for the daemon at `base`; it sends [`bearer_token`], when there is one, and
/// trusts the system's CA certificates and those in `TIERD_CA_CERT`, when set, for `https://` URLs.
pub fn http_client(base: &str, timeout: Duration) -> anyhow::Result<reqwest::blocking::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = bearer_token(base) {
        if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim())) {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
    }
    let mut builder = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .default_headers(headers);
    if let Some(path) = std::env::var_os(CA_ENV).filter(|p| !p.is_empty()) {
        let shown = std::path::Path::new(&path).display().to_string();
        let pem = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{CA_ENV}={shown}: cannot read it: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("{CA_ENV}={shown}: not a PEM file of certificates: {e}"))?;
        if certs.is_empty() {
            bail!("{CA_ENV}={shown} holds no PEM CERTIFICATE section");
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
}

/// What to add to a refusal of the daemon's: where a token comes from.
pub fn token_hint(status: reqwest::StatusCode) -> &'static str {
    match status {
        reqwest::StatusCode::UNAUTHORIZED => {
            " (set TIERD_TOKEN to a token: one of the daemon's [[access_tokens]], or the one a daemon listening on \
             loopback keeps in DATA_DIR/admin.token)"
        }
        reqwest::StatusCode::FORBIDDEN => " (TIERD_TOKEN's role or projects do not allow this)",
        _ => "",
    }
}

/// What to tell the user when a request could not be sent at all.
pub fn unreachable_message(base: &str, err: &reqwest::Error) -> String {
    let cause = root_cause(err);
    // rustls's verification errors: the handshake, which reqwest reports as a connect error.
    if cause.contains("certificate") {
        return format!(
            "the daemon at {base} serves a TLS certificate this client does not trust ({cause}); set {CA_ENV} to \
             the PEM file of its CA"
        );
    }
    if err.is_connect() {
        format!(
            "no tierd daemon answers at {base} ({cause}); start one with `tierd serve`, or point --url / TIERD_URL \
             at a running daemon"
        )
    } else if err.is_timeout() {
        format!("the daemon at {base} did not answer in time ({cause})")
    } else {
        format!("request to the daemon at {base} failed: {cause}")
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// The human part of an error response: its `error` or `message` field, else the body itself (shortened).
pub fn server_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return s.clone();
            }
        }
    }
    let body = body.trim();
    match body.char_indices().nth(500) {
        Some((cut, _)) => format!("{}...", &body[..cut]),
        None if body.is_empty() => "(empty response body)".to_owned(),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_joins_base_and_path() {
        assert_eq!(endpoint("http://127.0.0.1:7070", "/v1/query").unwrap().as_str(), "http://127.0.0.1:7070/v1/query");
        assert_eq!(endpoint("http://h:1/tierd/", "/import").unwrap().as_str(), "http://h:1/tierd/import");
        assert!(endpoint("127.0.0.1:7070", "/import").is_err());
        assert_eq!(endpoint("https://example.com", "/import").unwrap().as_str(), "https://example.com/import");
        assert!(endpoint("ftp://example.com", "/import").unwrap_err().contains("https://"));
    }

    #[test]
    fn the_default_admin_token_goes_only_to_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.token");
        std::fs::write(&file, "local-admin\n").unwrap();
        let token = |base: &str, env: Option<&str>| token_for(base, env.map(str::to_owned), &file);
        assert_eq!(token("http://127.0.0.1:7070", None).as_deref(), Some("local-admin"));
        assert_eq!(token("http://localhost:7070", None).as_deref(), Some("local-admin"));
        assert_eq!(token("https://[::1]:7070", None).as_deref(), Some("local-admin"));
        assert_eq!(token("http://tierd.example:7070", None), None, "never sent to another host");
        assert_eq!(token("http://10.0.0.5:7070", None), None);
        assert_eq!(token("http://tierd.example:7070", Some("given")).as_deref(), Some("given"), "TIERD_TOKEN wins");
        assert_eq!(token("http://127.0.0.1:7070", Some("given")).as_deref(), Some("given"));
        let missing = dir.path().join("none");
        assert_eq!(token_for("http://127.0.0.1:7070", None, &missing), None);
    }

    #[test]
    fn server_message_prefers_the_error_field() {
        assert_eq!(server_message(r#"{"code":400,"error":"bad time","status":"Bad Request"}"#), "bad time");
        assert_eq!(server_message(r#"{"message":"nope"}"#), "nope");
        assert_eq!(server_message("plain failure\n"), "plain failure");
        assert_eq!(server_message(""), "(empty response body)");
        assert!(server_message(&"x".repeat(2_000)).ends_with("..."));
    }

    #[test]
    fn refused_connection_says_how_to_start_a_daemon() {
        // Bind then drop a listener: the port is free and nothing answers on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let err = http_client(&base, Duration::from_secs(5)).unwrap().get(&base).send().unwrap_err();
        let message = unreachable_message(&base, &err);
        assert!(message.contains(&base) && message.contains("tierd serve"), "{message}");
    }
}
