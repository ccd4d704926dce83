//! Raw object-store peer of the cold-tier benchmark (`tests/bench/cold.py` drives it; see BENCHMARKS.md).
//!
//! Uploads files (the columnar segments tierd would migrate, copied out of its hot directory) to an S3-compatible
//! server with object_store's `AmazonS3` and nothing of tierd in between: no catalog, no budget, no checksums, no
//! retries. This is what "the same bytes to the same server" costs without tierd, the denominator of the
//! migration-throughput ratio. The files are read into memory before the clock starts (tierd's migrate reads
//! its hot copy inside the timed pass; that difference is on tierd's side of the ratio).
//!
//! Modes, each object put one after the other (tierd moves one segment at a time):
//! - `put`: one `PUT` per object, whatever its size;
//! - `multipart`: as tierd's `ColdStore::put_new` does it: objects of at least `--multipart-threshold` bytes go up
//!   in parts of `--part-size` with `--parts-in-flight` parts at once, smaller ones in one `PUT`.
//!
//! `--read-back` also `GET`s each object whole right after its put, timed separately (tierd's migrate reads each
//! upload back to verify it with `cold.verify = "read_back"`, or where the ETag is not an MD5), so the server's
//! read speed is measured too. `--pace-mb-per-s` sleeps after each
//! object until the average rate is down to that (a stand-in for the background load of a budgeted migration,
//! without tierd). `--range-probe N` then times N `GET`s of 1 MiB ranges spread over the objects (what a cold
//! query's first read does). `--local-dir DIR` puts to object_store's `LocalFileSystem` rooted at DIR instead, as
//! tierd's `cold.url = "file://DIR"` builds it (fsync on, automatic cleanup of empty directories). Prints one JSON
//! line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures::stream::{FuturesUnordered, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Put,
    Multipart,
}

#[derive(Debug, Parser)]
struct Args {
    /// Files to upload, in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// S3 endpoint, e.g. http://127.0.0.1:9000.
    #[arg(long, required_unless_present = "local_dir")]
    endpoint: Option<String>,
    #[arg(long, required_unless_present = "local_dir")]
    bucket: Option<String>,
    /// Put to this directory with object_store's `LocalFileSystem` (tierd's `file://` cold tier) instead of S3.
    #[arg(long, conflicts_with_all = ["endpoint", "bucket"])]
    local_dir: Option<PathBuf>,
    /// Key prefix; object i is `PREFIX/i-FILENAME`.
    #[arg(long)]
    prefix: String,
    #[arg(long, value_enum, default_value_t = Mode::Put)]
    mode: Mode,
    /// 16 MiB: tierd's `cold.multipart_threshold_bytes` default before it became 100 MiB, kept so that the
    /// `multipart` peer splits the benchmark's segments of tens of MiB (tests/bench/cold.py compares it with tierd
    /// configured the same way).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    multipart_threshold: usize,
    /// tierd's `cold.part_size_bytes` default.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    part_size: usize,
    /// tierd's parts of one upload in flight at once (`PARTS_IN_FLIGHT` in store/src/cold/mod.rs).
    #[arg(long, default_value_t = 4)]
    parts_in_flight: usize,
    /// Also GET every object back right after its put, timed separately.
    #[arg(long)]
    read_back: bool,
    /// Sleep after each object until the average rate is at most this many MB/s; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pace_mb_per_s: f64,
    /// Afterwards, time this many GETs of 1 MiB ranges spread over the objects.
    #[arg(long, default_value_t = 0)]
    range_probe: usize,
    #[arg(long, default_value = "bench")]
    access_key_id: String,
    #[arg(long, default_value = "bench-secret")]
    secret_access_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut objects = Vec::with_capacity(args.files.len());
    for (i, file) in args.files.iter().enumerate() {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let name = file.file_name().and_then(|n| n.to_str()).context("file name")?;
        objects.push((Path::from(format!("{}/{i}-{name}", args.prefix.trim_matches('/'))), Bytes::from(bytes)));
    }
    let store: Arc<dyn ObjectStore> = match &args.local_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(dir)
                    .context("opening the local directory")?
                    .with_fsync(true)
                    .with_automatic_cleanup(true),
            )
        }
        None => Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(args.endpoint.as_deref().context("--endpoint")?)
                .with_bucket_name(args.bucket.as_deref().context("--bucket")?)
                .with_region(&args.region)
                .with_access_key_id(&args.access_key_id)
                .with_secret_access_key(&args.secret_access_key)
                .with_allow_http(true)
                .with_client_options(ClientOptions::new().with_allow_http(true).with_timeout(Duration::from_secs(120)))
                .build()
                .context("building the S3 client")?,
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let total: usize = objects.iter().map(|(_, b)| b.len()).sum();
    let (put_secs, get_secs, wall_secs, range_ms) = rt.block_on(async {
        let (mut put, mut get) = (Duration::ZERO, Duration::ZERO);
        let (started, mut done) = (Instant::now(), 0usize);
        for (path, bytes) in &objects {
            let t = Instant::now();
            match args.mode {
                Mode::Multipart if bytes.len() >= args.multipart_threshold => {
                    put_multipart(store.as_ref(), path, bytes, args.part_size, args.parts_in_flight).await
                }
                _ => store.put(path, PutPayload::from_bytes(bytes.clone())).await.map(drop),
            }
            .with_context(|| format!("putting {path}"))?;
            put += t.elapsed();
            if args.read_back {
                let t = Instant::now();
                let back = store.get(path).await?.bytes().await?;
                get += t.elapsed();
                if back != *bytes {
                    bail!("{path}: read back {} bytes that differ from the {} put", back.len(), bytes.len());
                }
            }
            done += bytes.len();
            if args.pace_mb_per_s > 0.0 {
                let due = started + Duration::from_secs_f64(done as f64 / 1e6 / args.pace_mb_per_s);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let wall = started.elapsed();
        let mut range_ms = Vec::with_capacity(args.range_probe);
        for i in 0..args.range_probe {
            let (path, bytes) = &objects[i % objects.len()];
            // Offsets spread evenly over the object, a different one each round.
            let len = bytes.len().min(1 << 20);
            let round = i / objects.len();
            let rounds = args.range_probe.div_ceil(objects.len()).max(1);
            let start = ((bytes.len() - len) as u64 * round as u64 / rounds as u64) as usize;
            let t = Instant::now();
            let got = store.get_range(path, start as u64..(start + len) as u64).await?;
            range_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if got.len() != len {
                bail!("{path}: range of {len} bytes answered with {}", got.len());
            }
        }
        anyhow::Ok((put.as_secs_f64(), args.read_back.then_some(get.as_secs_f64()), wall.as_secs_f64(), range_ms))
    })?;
    let mb = total as f64 / 1e6;
    let mut sorted = range_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let range_median_ms = (!sorted.is_empty()).then(|| sorted[sorted.len() / 2]);
    println!(
        "{}",
        serde_json::json!({
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "objects": objects.len(),
            "bytes": total,
            "put_seconds": put_secs,
            "put_mb_per_s": mb / put_secs,
            "get_seconds": get_secs,
            "get_mb_per_s": get_secs.map(|s| mb / s),
            "put_get_mb_per_s": get_secs.map(|s| mb / (put_secs + s)),
            "wall_seconds": wall_secs,
            "range_requests": range_ms.len(),
            "range_median_ms": range_median_ms,
        })
    );
    Ok(())
}

/// One multipart upload, `in_flight` parts at a time, as tierd's `upload_parts` does.
async fn put_multipart(
    store: &dyn ObjectStore,
    path: &Path,
    bytes: &Bytes,
    part_size: usize,
    in_flight: usize,
) -> object_store::Result<()> {
    let mut upload = store.put_multipart(path).await?;
    let mut running = FuturesUnordered::new();
    let mut offset = 0;
    while offset < bytes.len() {
        if running.len() >= in_flight.max(1) {
            running.next().await.expect("parts are in flight")?;
        }
        let end = (offset + part_size).min(bytes.len());
        running.push(upload.put_part(PutPayload::from_bytes(bytes.slice(offset..end))));
        offset = end;
    }
    while let Some(part) = running.next().await {
        part?;
    }
    upload.complete().await.map(drop)
}
