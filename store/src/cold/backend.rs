//! From `cold.url` to the backend object store, rooted at the URL's prefix (keys are relative to it).
//!
//! HTTP backends (S3, GCS, Azure) are built with object_store's own retries turned off: [`super::ColdStore`]
//! retries instead, so that every attempt is counted, logged with its key and drawn from the IO budget.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use super::ColdConfig;
use crate::error::StoreError;

/// The kinds of `cold.url` tierd accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `""`: `DATA_DIR/cold`.
    EmbeddedDefault,
    Local {
        dir: PathBuf,
    },
    Memory {
        prefix: Path,
    },
    S3 {
        url: Url,
        prefix: Path,
    },
    Gcs {
        url: Url,
        prefix: Path,
    },
    Azure {
        url: Url,
        prefix: Path,
    },
}

fn bad_url(url: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Config {
        key: "cold.url",
        message: format!(
            "{url:?} {why}; use file:///absolute/path, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix \
             or memory://, or leave it empty for DATA_DIR/cold"
        ),
    }
}

impl Scheme {
    /// Parses `cold.url` (no I/O).
    pub(crate) fn of(url: &str) -> Result<Self, StoreError> {
        if url.is_empty() {
            return Ok(Scheme::EmbeddedDefault);
        }
        let parsed = Url::parse(url).map_err(|e| bad_url(url, format_args!("is not a URL ({e})")))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad_url(url, "must not have a query or fragment"));
        }
        if parsed.scheme() == "file" {
            if parsed.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(bad_url(url, "has a host: file URLs take an absolute path, file:///var/lib/tierd/cold"));
            }
            let dir = parsed.to_file_path().map_err(|()| bad_url(url, "is not an absolute file path"))?;
            return Ok(Scheme::Local { dir });
        }
        let (scheme, prefix) =
            ObjectStoreScheme::parse(&parsed).map_err(|e| bad_url(url, format_args!("is not supported ({e})")))?;
        Ok(match scheme {
            ObjectStoreScheme::Memory => Scheme::Memory { prefix },
            ObjectStoreScheme::AmazonS3 => Scheme::S3 { url: parsed, prefix },
            ObjectStoreScheme::GoogleCloudStorage => Scheme::Gcs { url: parsed, prefix },
            ObjectStoreScheme::MicrosoftAzure => Scheme::Azure { url: parsed, prefix },
            _ => return Err(bad_url(url, "is not an object store tierd supports")),
        })
    }

    pub(crate) fn is_s3(&self) -> bool {
        matches!(self, Scheme::S3 { .. })
    }
}

/// Builds the backend for a validated `cfg`. Returns it with the URL to show in logs (the embedded default
/// resolved to its directory).
pub(crate) fn build(cfg: &ColdConfig, data_dir: &FsPath) -> Result<(Arc<dyn ObjectStore>, String), StoreError> {
    let config_error = |e: object_store::Error| StoreError::Config {
        key: "cold.url",
        message: format!("cannot set up the object store for {:?}: {e}", cfg.url),
    };
    let scheme = Scheme::of(&cfg.url)?;
    let (store, url): (Arc<dyn ObjectStore>, String) = match scheme {
        Scheme::EmbeddedDefault => local(&data_dir.join("cold"))?,
        Scheme::Local { dir } => local(&dir)?,
        Scheme::Memory { prefix } => (prefixed(Arc::new(InMemory::new()), prefix), cfg.url.clone()),
        Scheme::S3 { url, prefix } => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_client_options(client_options(cfg))
                .with_retry(no_retries(cfg));
            if let Some(endpoint) = &cfg.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(region) = &cfg.region {
                builder = builder.with_region(region);
            }
            if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                builder = builder.with_access_key_id(id).with_secret_access_key(secret);
            }
            (prefixed(Arc::new(builder.build().map_err(config_error)?), prefix), cfg.url.clone())
        }
        Scheme::Gcs { url, prefix } => {
            let builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_client_options(client_options(cfg))
                .with_retry(no_retries(cfg));
            (prefixed(Arc::new(builder.build().map_err(config_error)?), prefix), cfg.url.clone())
        }
        Scheme::Azure { url, prefix } => {
            let builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_client_options(client_options(cfg))
                .with_retry(no_retries(cfg));
            (prefixed(Arc::new(builder.build().map_err(config_error)?), prefix), cfg.url.clone())
        }
    };
    Ok((store, url))
}

/// A directory of files; uploads are fsynced (file and directory) before they count as done, and emptied
/// directories are removed on delete.
fn local(dir: &FsPath) -> Result<(Arc<dyn ObjectStore>, String), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Config {
        key: "cold.url",
        message: format!("cannot create the cold tier directory {}: {e}", dir.display()),
    })?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| StoreError::Config {
            key: "cold.url",
            message: format!("cannot use {} as the cold tier: {e}", dir.display()),
        })?
        .with_fsync(true)
        .with_automatic_cleanup(true);
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let url = Url::from_directory_path(&shown).map(|u| u.to_string()).unwrap_or_else(|()| shown.display().to_string());
    Ok((Arc::new(store), url))
}

fn prefixed(store: Arc<dyn ObjectStore>, prefix: Path) -> Arc<dyn ObjectStore> {
    if prefix.as_ref().is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn client_options(cfg: &ColdConfig) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(cfg.allow_http)
        .with_timeout(Duration::from_secs(cfg.request_timeout_secs))
        .with_connect_timeout(Duration::from_secs(cfg.request_timeout_secs.min(10)))
}

fn no_retries(cfg: &ColdConfig) -> RetryConfig {
    RetryConfig { max_retries: 0, retry_timeout: Duration::from_secs(cfg.request_timeout_secs), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_and_bad_ones_name_cold_url() {
        assert_eq!(Scheme::of("").unwrap(), Scheme::EmbeddedDefault);
        assert_eq!(Scheme::of("file:///var/lib/cold").unwrap(), Scheme::Local { dir: "/var/lib/cold".into() });
        assert!(matches!(Scheme::of("memory://").unwrap(), Scheme::Memory { .. }));
        match Scheme::of("s3://bucket/some/prefix").unwrap() {
            Scheme::S3 { prefix, .. } => assert_eq!(prefix.as_ref(), "some/prefix"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Scheme::of("gs://bucket/p").unwrap(), Scheme::Gcs { .. }));
        assert!(matches!(Scheme::of("az://container/p").unwrap(), Scheme::Azure { .. }));
        for bad in ["/var/lib/cold", "file://relative/dir", "ftp://host/x", "http://example.com/x", "s3://b/p?x=1"] {
            let e = Scheme::of(bad).unwrap_err().to_string();
            assert!(e.contains("cold.url") && e.contains(bad), "{bad}: {e}");
        }
    }
}
