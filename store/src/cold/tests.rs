//! ColdStore on `memory://` and `file://`: configuration errors, keys, create-only puts, retries through injected
//! faults (including answers lost after the write landed), multipart, and the IO budget. The conformance suite
//! against every backend, moto included, is `tests/tests/cold_store.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::budget::BudgetConfig;

const MIB: usize = 1024 * 1024;

fn memory(f: impl FnOnce(&mut ColdConfig)) -> ColdConfig {
    let mut cfg = ColdConfig { url: "memory://".into(), retry_backoff_ms: 10, ..Default::default() };
    f(&mut cfg);
    cfg
}

fn open(cfg: &ColdConfig, faults: Option<FaultConfig>) -> ColdStore {
    ColdStore::open(cfg, FsPath::new("/nonexistent"), Arc::new(IoBudget::unlimited()), faults).unwrap()
}

fn faults(spec: &str) -> Option<FaultConfig> {
    Some(FaultConfig::parse(spec).unwrap())
}

fn blob(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
}

fn config_key(e: StoreError) -> &'static str {
    match e {
        StoreError::Config { key, .. } => key,
        other => panic!("not a config error: {other}"),
    }
}

#[test]
fn bad_configurations_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(IoBudget::unlimited());
    let open = |cfg: ColdConfig| ColdStore::open(&cfg, dir.path(), budget.clone(), None).unwrap_err();
    for url in ["ftp://host/x", "file://relative/dir", "not a url", "s3://bucket/p#frag"] {
        let e = open(ColdConfig { url: url.into(), ..Default::default() });
        assert!(e.to_string().contains(url), "{e}");
        assert_eq!(config_key(e), "cold.url");
    }
    let s3 = |f: fn(&mut ColdConfig)| {
        let mut cfg = ColdConfig { url: "s3://bucket/prefix".into(), ..Default::default() };
        f(&mut cfg);
        config_key(open(cfg))
    };
    assert_eq!(
        s3(|c| c.endpoint = Some("http://127.0.0.1:9000".into())),
        "cold.endpoint",
        "plain HTTP needs allow_http"
    );
    assert_eq!(s3(|c| c.endpoint = Some("127.0.0.1:9000".into())), "cold.endpoint");
    assert_eq!(s3(|c| c.access_key_id = Some("id".into())), "cold.access_key_id", "a key id without its secret");
    assert_eq!(s3(|c| c.part_size_bytes = 1024), "cold.part_size_bytes");
    assert_eq!(s3(|c| c.request_timeout_secs = 0), "cold.request_timeout_secs");
    let e = open(memory(|c| c.region = Some("eu-west-1".into())));
    assert_eq!(config_key(e), "cold.region", "S3 settings on a memory:// URL");
}

#[test]
fn s3_gcs_and_azure_urls_open_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = ColdConfig {
        url: "s3://bucket/some/prefix".into(),
        endpoint: Some("http://127.0.0.1:1".into()),
        allow_http: true,
        access_key_id: Some("id".into()),
        secret_access_key: Some("secret".into()),
        region: Some("us-east-1".into()),
        ..Default::default()
    };
    let store = ColdStore::open(&s3, dir.path(), Arc::new(IoBudget::unlimited()), None).unwrap();
    assert_eq!(store.url(), "s3://bucket/some/prefix");
    assert!(!format!("{s3:?}").contains("secret\""), "Debug hides the secret key: {s3:?}");
    let gcs_or_azure = |url: &str| {
        let cfg = ColdConfig { url: url.into(), ..Default::default() };
        ColdStore::open(&cfg, dir.path(), Arc::new(IoBudget::unlimited()), None)
    };
    for url in ["gs://bucket/prefix", "abfss://container@account.dfs.core.windows.net/prefix"] {
        assert_eq!(gcs_or_azure(url).unwrap().url(), url);
    }
    // Azure needs an account: in the URL, or AZURE_STORAGE_ACCOUNT_NAME.
    if std::env::var_os("AZURE_STORAGE_ACCOUNT_NAME").is_none() {
        let e = gcs_or_azure("az://container/prefix").unwrap_err();
        assert!(e.to_string().contains("Account"), "{e}");
        assert_eq!(config_key(e), "cold.url");
    }
}

#[tokio::test]
async fn the_embedded_default_is_data_dir_cold() {
    let dir = tempfile::tempdir().unwrap();
    let store = ColdStore::open(&ColdConfig::default(), dir.path(), Arc::new(IoBudget::unlimited()), None).unwrap();
    let cold = std::fs::canonicalize(dir.path().join("cold")).unwrap();
    assert!(store.url().starts_with("file://") && store.url().ends_with("/cold/"), "{}", store.url());
    store.put_new("seg/a.parquet", Bytes::from_static(b"abc")).await.unwrap();
    assert_eq!(std::fs::read(cold.join("seg/a.parquet")).unwrap(), b"abc");
    store.delete("seg/a.parquet").await.unwrap();
    assert!(!cold.join("seg").exists(), "emptied directories are cleaned up");
}

#[tokio::test]
async fn keys_must_round_trip() {
    let store = open(&memory(|_| {}), None);
    for key in ["", "/a", "a/", "a//b", "a/../b", "a/./b"] {
        match store.put_new(key, Bytes::from_static(b"x")).await {
            Err(StoreError::InvalidObjectKey { key: k, op: "put_new", .. }) => assert_eq!(k, key),
            other => panic!("{key:?}: {other:?}"),
        }
    }
    store.put_new("proj/2024-01-01/01HZX.parquet", Bytes::from_static(b"x")).await.unwrap();
}

#[tokio::test]
async fn a_second_put_of_a_key_is_refused_single_and_multipart() {
    let store = open(&memory(|c| c.multipart_threshold_bytes = 5 * MIB as u64), None);
    store.put_new("small", blob(10, 1)).await.unwrap();
    let e = store.put_new("small", blob(10, 2)).await.unwrap_err();
    assert!(matches!(&e, StoreError::ObjectExists { op: "put_new", key, .. } if key == "small"), "{e}");
    store.put_new("big", blob(11 * MIB, 1)).await.unwrap();
    let e = store.put_new("big", blob(11 * MIB, 2)).await.unwrap_err();
    assert!(matches!(e, StoreError::ObjectExists { .. }), "{e}");
    assert_eq!(store.get("small").await.unwrap(), blob(10, 1));
    assert_eq!(store.get("big").await.unwrap(), blob(11 * MIB, 1));
}

#[tokio::test]
async fn absent_objects() {
    let store = open(&memory(|_| {}), None);
    let e = store.get("nope").await.unwrap_err();
    assert!(matches!(&e, StoreError::ObjectNotFound { op: "get", key, .. } if key == "nope"), "{e}");
    assert!(matches!(store.get_range("nope", 0..1).await, Err(StoreError::ObjectNotFound { .. })));
    assert_eq!(store.head("nope").await.unwrap(), None);
    store.delete("nope").await.unwrap();
    assert!(matches!(store.copy("nope", "other").await, Err(StoreError::ObjectNotFound { .. })));
    assert_eq!(store.retries(), 0, "not found is an answer, never retried");
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_until_the_limit() {
    let store = open(&memory(|c| c.max_retries = 3), faults("error_rate=1"));
    let e = store.put_new("k", blob(10, 0)).await.unwrap_err();
    match &e {
        StoreError::ObjectStore { attempts: 4, op: "put_new", key, .. } => assert_eq!(key, "k"),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("injected fault"), "{e}");
    assert_eq!(store.retries(), 3);
    assert_eq!(store.faults_injected().unwrap().errors, 4);
}

#[tokio::test(start_paused = true)]
async fn a_put_whose_answer_was_lost_counts_as_written() {
    // A timeout forwards the put and then fails: the object is there, the caller did not hear so. The retry meets
    // AlreadyExists and takes it as success.
    let store = open(&memory(|c| c.max_retries = 30), faults("timeout_rate=0.5,timeout_ms=100,seed=3"));
    for i in 0..20 {
        store.put_new(&format!("k{i}"), blob(100, i as u8)).await.unwrap();
    }
    let faults = store.faults_injected().unwrap();
    assert!(faults.timeouts > 0 && store.retries() > 0, "{faults:?}");
    for i in 0..20 {
        assert_eq!(store.get(&format!("k{i}")).await.unwrap(), blob(100, i as u8));
    }
}

#[tokio::test(start_paused = true)]
async fn multipart_uploads_survive_failed_parts() {
    let cfg = memory(|c| {
        c.multipart_threshold_bytes = 5 * MIB as u64;
        c.part_size_bytes = 5 * MIB as u64;
        c.max_retries = 20;
    });
    let store = open(&cfg, faults("part_error_rate=0.3,error_rate=0.05,seed=11"));
    for i in 0..4u8 {
        store.put_new(&format!("big{i}"), blob(12 * MIB + 7, i)).await.unwrap();
    }
    let faults = store.faults_injected().unwrap();
    assert!(faults.part_errors > 0, "{faults:?}");
    for i in 0..4u8 {
        assert_eq!(store.get(&format!("big{i}")).await.unwrap(), blob(12 * MIB + 7, i));
    }
    let keys: Vec<String> = store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["big0", "big1", "big2", "big3"], "aborted uploads leave nothing behind");
}

#[tokio::test]
async fn list_is_sorted_and_prefixes_are_whole_paths() {
    let store = open(&memory(|_| {}), None);
    for key in ["a/b/2", "a/b/1", "a/bc/1", "z"] {
        store.put_new(key, Bytes::from_static(b"x")).await.unwrap();
    }
    let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
    assert_eq!(keys(store.list("a/b").await.unwrap()), ["a/b/1", "a/b/2"]);
    assert_eq!(keys(store.list("a/b/").await.unwrap()), ["a/b/1", "a/b/2"]);
    assert_eq!(keys(store.list("").await.unwrap()), ["a/b/1", "a/b/2", "a/bc/1", "z"]);
    let info = store.head("z").await.unwrap().unwrap();
    assert_eq!((info.key.as_str(), info.size), ("z", 1));
}

#[tokio::test]
async fn ranges() {
    let store = open(&memory(|_| {}), None);
    let data = blob(1000, 5);
    store.put_new("r", data.clone()).await.unwrap();
    assert_eq!(store.get_range("r", 10..20).await.unwrap(), data.slice(10..20));
    assert_eq!(store.get_range("r", 7..7).await.unwrap(), Bytes::new());
    let got = store.get_ranges("r", &[0..1, 500..1000, 3..9]).await.unwrap();
    assert_eq!(got, vec![data.slice(0..1), data.slice(500..1000), data.slice(3..9)]);
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 9..3;
    assert!(matches!(store.get_range("r", backwards).await, Err(StoreError::ObjectStore { attempts: 0, .. })));
}

#[tokio::test(start_paused = true)]
async fn background_requests_wait_for_the_budget_and_foreground_ones_do_not() {
    let budget =
        Arc::new(IoBudget::new(&BudgetConfig { object_bytes_per_sec: MIB as u64, ..BudgetConfig::unlimited() }));
    let store = ColdStore::open(&memory(|_| {}), FsPath::new("/x"), budget.clone(), None).unwrap();
    let start = Instant::now();
    store.put_new("a", blob(MIB, 0)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "the first MiB is the burst");
    store.put_new("b", blob(MIB, 1)).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
    // The bucket is empty now; a foreground read does not wait, a background one does.
    let before = Instant::now();
    store.foreground().get("a").await.unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO);
    store.get_range("a", 0..MIB as u64).await.unwrap();
    assert!(before.elapsed() >= Duration::from_secs(1));
    assert!(budget.waited().object_bytes >= Duration::from_secs(2), "{:?}", budget.waited());
}
