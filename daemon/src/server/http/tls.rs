//! HTTPS for the listener (`http.tls_cert_file`, `http.tls_key_file`): rustls with the aws-lc-rs provider (the
//! one `object_store`'s client already builds), HTTP/1.1 over TLS 1.2 and 1.3, no client certificates.
//!
//! The certificate and key are read once at start; a file that cannot be read or holds no usable PEM stops the
//! start with the key and path named. Key material is never logged. A handshake must finish within
//! `http.header_read_timeout_ms` (a client that opens connections and never speaks TLS is the slowloris of HTTPS);
//! failed handshakes are counted in `tierd_http_tls_handshake_failures_total`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::server::config::HttpSection;

/// The acceptor for `http`'s certificate and key; `None` when neither is set (plain HTTP).
pub fn acceptor(http: &HttpSection) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert_file), Some(key_file)) = (&http.tls_cert_file, &http.tls_key_file) else {
        return Ok(None);
    };
    let certs = certificates(cert_file)?;
    let key = private_key(key_file)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!(
                "config keys `http.tls_cert_file` ({}) and `http.tls_key_file` ({}): the key does not fit the \
                 certificate, or one of them is not usable: {e}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn read(key: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("config key `{key}`: cannot read {}", path.display()))
}

/// The certificate chain in `path`, leaf first, as PEM `CERTIFICATE` sections.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read("http.tls_cert_file", path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("config key `http.tls_cert_file`: {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("config key `http.tls_cert_file`: {} holds no PEM CERTIFICATE section", path.display());
    }
    Ok(certs)
}

/// The first private key in `path` (PKCS#8, PKCS#1 or SEC1 PEM). The error never quotes the file.
fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read("http.tls_key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow!(
            "config key `http.tls_key_file`: {} holds no usable PEM private key (PKCS#8, RSA or EC): {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(cert: Option<&Path>, key: Option<&Path>) -> HttpSection {
        HttpSection {
            tls_cert_file: cert.map(Path::to_path_buf),
            tls_key_file: key.map(Path::to_path_buf),
            ..HttpSection::default()
        }
    }

    #[test]
    fn no_files_is_plain_http() {
        assert!(acceptor(&HttpSection::default()).unwrap().is_none());
    }

    #[test]
    fn unreadable_or_empty_files_name_the_key_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = acceptor(&section(Some(&missing), Some(&missing))).err().expect("refused").to_string();
        assert!(e.contains("http.tls_cert_file") && e.contains("missing.pem"), "{e}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = acceptor(&section(Some(&empty), Some(&empty))).err().expect("refused").to_string();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
    }

    #[test]
    fn a_key_file_without_a_key_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        // A syntactically valid certificate section whose content is not checked before the key is read.
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "secret-looking text that is no key\n").unwrap();
        let e = acceptor(&section(Some(&cert), Some(&key))).err().expect("refused").to_string();
        assert!(e.contains("http.tls_key_file") && e.contains("no usable PEM private key"), "{e}");
        assert!(!e.contains("secret-looking"), "the key file's content is never quoted: {e}");
    }
}
