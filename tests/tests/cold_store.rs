//! One conformance suite for the cold tier's `ColdStore`, run against every backend: `memory://`, `file://` (a temp
//! directory), a real S3-compatible server (moto, `s3://bucket/prefix` with endpoint and plain HTTP), and the
//! fault-injecting wrapper over `memory://` (10% of requests fail: every operation still succeeds thanks to
//! retries, and the fault counters prove that faults happened).
//!
//! Each check is a `pub async fn` taking the store under test, in the manner of object_store's `integration.rs`.
//!
//! Create-only puts, as observed here: a second `put_new` of a key is refused with `ObjectExists` by `memory://`
//! (in-memory check), `file://` (hard link that fails when the file exists) and moto (`If-None-Match: *` answered
//! with 412), for single puts and for multipart uploads (checked by a look before the upload, as object_store
//! completes multipart uploads unconditionally). Through injected faults a second `put_new` may instead return Ok
//! (a failed attempt followed by `AlreadyExists` is taken as "an earlier attempt landed"), but never overwrites.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tierd_store::budget::{BudgetConfig, IoBudget};
use tierd_store::cold::{ColdConfig, ColdStore, FaultConfig, ObjectInfo};
use tierd_store::verify::{etag_matches, looks_like_s3_md5, s3_etag};
use tierd_store::StoreError;
use tierd_tests::MotoServer;

const MIB: usize = 1024 * 1024;

/// A backend under test, opened as often as a check needs (with its own budget).
pub struct Backend {
    pub name: &'static str,
    pub cfg: ColdConfig,
    pub data_dir: PathBuf,
    pub faults: Option<FaultConfig>,
    /// Whether a second put of a key must fail (no injected faults in between).
    pub strict_create_only: bool,
}

impl Backend {
    pub fn open(&self, budget: Arc<IoBudget>) -> ColdStore {
        ColdStore::open(&self.cfg, &self.data_dir, budget, self.faults.clone())
            .unwrap_or_else(|e| panic!("{}: cannot open the cold store: {e}", self.name))
    }
}

/// Lowered multipart settings so that an 11 MiB object goes up in three parts (S3's smallest part is 5 MiB).
fn base_config(url: String) -> ColdConfig {
    ColdConfig {
        url,
        multipart_threshold_bytes: 5 * MIB as u64,
        part_size_bytes: 5 * MIB as u64,
        retry_backoff_ms: 5,
        ..Default::default()
    }
}

fn blob(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8).collect::<Vec<u8>>().into()
}

fn keys(objects: &[ObjectInfo]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

pub async fn put_new_is_create_only(s: &ColdStore, b: &Backend) {
    let (first, second) = (blob(1000, 1), blob(1000, 2));
    s.put_new("c/create/k", first.clone()).await.unwrap();
    match s.put_new("c/create/k", second).await {
        Err(StoreError::ObjectExists { key, op: "put_new", .. }) => assert_eq!(key, "c/create/k"),
        Ok(()) if !b.strict_create_only => {}
        other => panic!("{}: second put_new of a key: {other:?}", b.name),
    }
    assert_eq!(s.get("c/create/k").await.unwrap(), first, "{}: a second put must never overwrite", b.name);
}

pub async fn get_whole_and_ranges(s: &ColdStore) {
    let data = blob(100_000, 3);
    s.put_new("c/get/k", data.clone()).await.unwrap();
    assert_eq!(s.get("c/get/k").await.unwrap(), data);
    assert_eq!(s.get_range("c/get/k", 10..20).await.unwrap(), data.slice(10..20));
    assert_eq!(s.get_range("c/get/k", 99_990..100_000).await.unwrap(), data.slice(99_990..));
    // Footer-style reads: several ranges of one object, out of order and overlapping.
    let ranges = [99_000..100_000, 0..8, 4..4096, 50_000..50_001];
    let got = s.get_ranges("c/get/k", &ranges).await.unwrap();
    let want: Vec<Bytes> = ranges.iter().map(|r| data.slice(r.start as usize..r.end as usize)).collect();
    assert_eq!(got, want);
    match s.get("c/get/absent").await {
        Err(StoreError::ObjectNotFound { key, op: "get", .. }) => assert_eq!(key, "c/get/absent"),
        other => panic!("get of an absent key: {other:?}"),
    }
    assert!(matches!(s.get_range("c/get/absent", 0..1).await, Err(StoreError::ObjectNotFound { .. })));
}

pub async fn head_absent_and_present(s: &ColdStore) {
    assert_eq!(s.head("c/head/k").await.unwrap(), None);
    s.put_new("c/head/k", blob(4321, 4)).await.unwrap();
    let info = s.head("c/head/k").await.unwrap().expect("present after put");
    assert_eq!((info.key.as_str(), info.size), ("c/head/k", 4321));
    let now_ms = std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().as_millis() as i64;
    assert!(
        (info.last_modified_ms - now_ms).abs() < 3_600_000,
        "last_modified_ms {} vs now {now_ms}",
        info.last_modified_ms
    );
}

pub async fn list_with_prefix(s: &ColdStore) {
    for key in ["c/list/a/2", "c/list/a/1", "c/list/ab/1", "c/list/b/x/1"] {
        s.put_new(key, Bytes::from_static(b"x")).await.unwrap();
    }
    assert_eq!(keys(&s.list("c/list/a").await.unwrap()), ["c/list/a/1", "c/list/a/2"], "prefixes are whole paths");
    assert_eq!(keys(&s.list("c/list/a/").await.unwrap()), ["c/list/a/1", "c/list/a/2"]);
    assert_eq!(keys(&s.list("c/list").await.unwrap()), ["c/list/a/1", "c/list/a/2", "c/list/ab/1", "c/list/b/x/1"]);
    assert!(s.list("c/list/none").await.unwrap().is_empty());
    let all = s.list("").await.unwrap();
    assert!(all.iter().any(|o| o.key == "c/list/b/x/1" && o.size == 1), "{:?}", keys(&all));
}

pub async fn delete_is_idempotent(s: &ColdStore) {
    s.put_new("c/delete/k", blob(10, 5)).await.unwrap();
    s.delete("c/delete/k").await.unwrap();
    s.delete("c/delete/k").await.unwrap();
    s.delete("c/delete/never-was").await.unwrap();
    assert_eq!(s.head("c/delete/k").await.unwrap(), None);
    assert!(matches!(s.get("c/delete/k").await, Err(StoreError::ObjectNotFound { .. })));
    assert!(s.list("c/delete").await.unwrap().is_empty());
}

pub async fn copy_makes_an_equal_object(s: &ColdStore) {
    let data = blob(70_000, 6);
    s.put_new("c/copy/from", data.clone()).await.unwrap();
    s.copy("c/copy/from", "c/copy/to").await.unwrap();
    assert_eq!(s.get("c/copy/to").await.unwrap(), data);
    assert_eq!(s.get("c/copy/from").await.unwrap(), data, "the source stays");
    assert!(matches!(s.copy("c/copy/absent", "c/copy/x").await, Err(StoreError::ObjectNotFound { .. })));
}

/// An object above the (lowered) multipart threshold goes up in parts and comes back whole; a second upload of
/// its key is refused like a single put.
pub async fn multipart_round_trips(s: &ColdStore, b: &Backend) {
    let data = blob(11 * MIB + 123, 7);
    assert!(data.len() as u64 >= b.cfg.multipart_threshold_bytes, "the check must cross the threshold");
    s.put_new("c/multipart/k", data.clone()).await.unwrap();
    assert_eq!(s.head("c/multipart/k").await.unwrap().unwrap().size, data.len() as u64);
    assert_eq!(s.get("c/multipart/k").await.unwrap(), data);
    let tail = (data.len() - 100) as u64..data.len() as u64;
    assert_eq!(s.get_range("c/multipart/k", tail.clone()).await.unwrap(), data.slice(tail.start as usize..));
    match s.put_new("c/multipart/k", blob(11 * MIB, 8)).await {
        Err(StoreError::ObjectExists { .. }) => {}
        Ok(()) if !b.strict_create_only => {}
        other => panic!("{}: second multipart put_new: {other:?}", b.name),
    }
    assert_eq!(s.get("c/multipart/k").await.unwrap(), data);
}

/// What the server answers to an upload: on an S3 server, the ETag is the MD5 of a single PUT's bytes, and S3's
/// MD5-of-part-MD5s for a multipart upload (what `cold.verify = "auto"` relies on, computed independently by
/// `tierd_store::verify::s3_etag`); elsewhere something that does not even look like one, so moves read back.
pub async fn etags_are_md5s_only_on_s3(s: &ColdStore, b: &Backend, s3: bool) {
    let single = blob(100_000, 11);
    let answer = s.put_new_answered("c/etag/single", single.clone()).await.unwrap();
    assert_eq!(answer.part_size, None);
    let e_tag = answer.e_tag.expect("every backend answers an ETag");
    let multi = blob(11 * MIB + 123, 12);
    let answer_multi = s.put_new_answered("c/etag/multi", multi.clone()).await.unwrap();
    assert_eq!(answer_multi.part_size, Some(b.cfg.part_size_bytes), "{}", b.name);
    let e_tag_multi = answer_multi.e_tag.expect("every backend answers an ETag");
    if s3 {
        assert!(etag_matches(&e_tag, &s3_etag(&single, None)), "{}: single PUT ETag {e_tag}", b.name);
        let expected = s3_etag(&multi, Some(b.cfg.part_size_bytes));
        assert!(expected.ends_with("-3"));
        assert!(etag_matches(&e_tag_multi, &expected), "{}: multipart ETag {e_tag_multi} vs {expected}", b.name);
        let head = s.head("c/etag/multi").await.unwrap().unwrap();
        assert!(etag_matches(head.e_tag.as_deref().unwrap(), &expected), "HEAD agrees: {head:?}");
        // A different byte gives a different ETag: the check would catch a corrupted upload.
        let mut other = multi.to_vec();
        other[6 * MIB] ^= 1;
        assert!(!etag_matches(&e_tag_multi, &s3_etag(&other, Some(b.cfg.part_size_bytes))));
    } else {
        assert!(!looks_like_s3_md5(&e_tag) && !looks_like_s3_md5(&e_tag_multi), "{}: {e_tag} {e_tag_multi}", b.name);
    }
}

/// With a tiny budget (1 MiB/s of object bytes), the second 1 MiB upload waits about a second, and the wait shows
/// in the budget's tally.
pub async fn budget_wait_is_visible(b: &Backend) {
    let config = BudgetConfig { object_bytes_per_sec: MIB as u64, ..BudgetConfig::unlimited() };
    let budget = Arc::new(IoBudget::new(&config));
    let s = b.open(budget.clone());
    let start = Instant::now();
    s.put_new("c/budget/1", blob(MIB, 9)).await.unwrap();
    s.put_new("c/budget/2", blob(MIB, 10)).await.unwrap();
    let waited = budget.waited().object_bytes;
    assert!(waited >= Duration::from_millis(900), "{}: waited {waited:?}", b.name);
    assert!(start.elapsed() >= Duration::from_millis(900), "{}: took {:?}", b.name, start.elapsed());
}

/// Every check, on one store (and a second one for the budget check).
pub async fn run_all(b: &Backend) -> ColdStore {
    let s = b.open(Arc::new(IoBudget::unlimited()));
    put_new_is_create_only(&s, b).await;
    get_whole_and_ranges(&s).await;
    head_absent_and_present(&s).await;
    list_with_prefix(&s).await;
    delete_is_idempotent(&s).await;
    copy_makes_an_equal_object(&s).await;
    multipart_round_trips(&s, b).await;
    if b.faults.is_none() {
        etags_are_md5s_only_on_s3(&s, b, b.name == "moto").await;
    }
    budget_wait_is_visible(b).await;
    s
}

#[tokio::test]
async fn memory() {
    let b = Backend {
        name: "memory",
        cfg: base_config("memory://".into()),
        data_dir: "/nonexistent".into(),
        faults: None,
        strict_create_only: true,
    };
    let s = run_all(&b).await;
    assert_eq!(s.retries(), 0);
}

#[tokio::test]
async fn file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cold root");
    let url = url_of_dir(&root);
    let b = Backend {
        name: "file",
        cfg: base_config(url),
        data_dir: dir.path().into(),
        faults: None,
        strict_create_only: true,
    };
    run_all(&b).await;
    assert_eq!(
        std::fs::read(root.join("c/copy/to")).unwrap(),
        blob(70_000, 6),
        "objects are plain files under the URL's path"
    );
    assert!(!root.join("c/delete").exists(), "deleting the last object of a directory removes it");
}

#[tokio::test]
async fn file_embedded_default_is_data_dir_cold() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend {
        name: "file (embedded default)",
        cfg: base_config(String::new()),
        data_dir: dir.path().into(),
        faults: None,
        strict_create_only: true,
    };
    let s = b.open(Arc::new(IoBudget::unlimited()));
    put_new_is_create_only(&s, &b).await;
    assert!(dir.path().join("cold/c/create/k").is_file());
}

#[tokio::test]
async fn moto() {
    let moto = MotoServer::start();
    let cfg = ColdConfig {
        endpoint: Some(moto.endpoint()),
        region: Some(MotoServer::REGION.into()),
        access_key_id: Some(MotoServer::ACCESS_KEY_ID.into()),
        secret_access_key: Some(MotoServer::SECRET_ACCESS_KEY.into()),
        allow_http: true,
        ..base_config(moto.url("tierd/cold"))
    };
    let b = Backend { name: "moto", cfg, data_dir: "/nonexistent".into(), faults: None, strict_create_only: true };
    run_all(&b).await;
    // Keys are relative to the URL's prefix: in the bucket they live under it.
    let stored = moto.list_keys("tierd/cold/c/list/");
    assert_eq!(
        stored,
        ["tierd/cold/c/list/a/1", "tierd/cold/c/list/a/2", "tierd/cold/c/list/ab/1", "tierd/cold/c/list/b/x/1"]
    );
    assert!(moto.list_keys("c/").is_empty(), "nothing outside the prefix");
}

#[tokio::test]
async fn memory_with_ten_percent_errors() {
    let b = Backend {
        name: "memory with faults",
        cfg: ColdConfig { max_retries: 10, ..base_config("memory://".into()) },
        data_dir: "/nonexistent".into(),
        faults: Some(FaultConfig::parse("error_rate=0.1,seed=7").unwrap()),
        strict_create_only: false,
    };
    let s = run_all(&b).await;
    let faults = s.faults_injected().expect("faults are configured");
    assert!(faults.errors > 0, "{faults:?}");
    // Not one retry per error: parts in flight can fail together (one retry of the upload), and a failed abort is
    // only logged.
    assert!(s.retries() > 0, "{} retries, {faults:?}", s.retries());
}

#[tokio::test]
async fn memory_with_every_kind_of_fault() {
    let spec = "error_rate=0.1,timeout_rate=0.05,timeout_ms=20,slow_rate=0.05,slow_ms=5,part_error_rate=0.1,seed=11";
    let b = Backend {
        name: "memory with every fault",
        cfg: ColdConfig { max_retries: 12, ..base_config("memory://".into()) },
        data_dir: "/nonexistent".into(),
        faults: Some(FaultConfig::parse(spec).unwrap()),
        strict_create_only: false,
    };
    let s = run_all(&b).await;
    let faults = s.faults_injected().expect("faults are configured");
    assert!(faults.errors > 0 && faults.timeouts > 0 && faults.slow > 0, "{faults:?}");
}

fn url_of_dir(dir: &std::path::Path) -> String {
    // `file:///abs/path` with the path percent-encoded (the directory name has a space).
    let mut url = String::from("file://");
    for part in dir.to_str().expect("utf-8 temp dir").split('/').filter(|p| !p.is_empty()) {
        url.push('/');
        url.push_str(&part.replace('%', "%25").replace(' ', "%20"));
    }
    url
}
