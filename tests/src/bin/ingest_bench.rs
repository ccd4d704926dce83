//! Ingest load generator for the durable-ingest benchmark (`tests/bench/ingest.py` drives it; see BENCHMARKS.md).
//!
//! Reads an NDJSON file of Mixpanel events into memory, cuts it into request bodies of `--batch` events, and sends
//! them to `POST /import` over `--connections` concurrent HTTP/1.1 connections, either as fast as acknowledgements
//! come back (closed loop) or at a fixed offered rate (`--rate` events/s, open loop: each request has a scheduled
//! start time and its latency is measured from that time, so a slow server cannot hide queueing delay). Every
//! request's latency from scheduled start to the 200 (which tierd sends only once the batch is fsynced) goes into an
//! HdrHistogram. Prints one JSON line of results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
struct Args {
    /// NDJSON file of events.
    file: std::path::PathBuf,
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    url: String,
    #[arg(long, default_value = "bench")]
    project: String,
    /// Events per request.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Offered load in events/s (open loop); 0 = as fast as possible (closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Send the file this many times (each pass re-sends the same events: duplicates for tierd, same bytes).
    #[arg(long, default_value_t = 1)]
    passes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut bodies: Vec<(usize, bytes::Bytes)> = Vec::new();
    for chunk in lines.chunks(args.batch.max(1)) {
        let mut body = Vec::with_capacity(chunk.iter().map(|l| l.len() + 1).sum());
        for l in chunk {
            body.extend_from_slice(l);
            body.push(b'\n');
        }
        bodies.push((chunk.len(), bytes::Bytes::from(body)));
    }
    let requests: Vec<(usize, bytes::Bytes)> =
        (0..args.passes).flat_map(|_| bodies.iter().cloned()).collect::<Vec<_>>();
    let total_events: usize = requests.iter().map(|(n, _)| n).sum();
    let total_bytes: usize = requests.iter().map(|(_, b)| b.len()).sum();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (elapsed, hist, errors) = rt.block_on(run(&args, Arc::new(requests)))?;
    let secs = elapsed.as_secs_f64();
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "events": total_events,
            "bytes": total_bytes,
            "requests": hist.len(),
            "errors": errors,
            "connections": args.connections,
            "batch": args.batch,
            "offered_rate": args.rate,
            "seconds": secs,
            "events_per_s": total_events as f64 / secs,
            "mb_per_s": total_bytes as f64 / secs / 1e6,
            "ack_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": hist.max() as f64 / 1000.0},
        })
    );
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

async fn run(
    args: &Args,
    requests: Arc<Vec<(usize, bytes::Bytes)>>,
) -> anyhow::Result<(Duration, Histogram<u64>, usize)> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.connections).build()?;
    let url = format!("{}/import?project={}", args.url, args.project);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let per_request = if args.rate > 0.0 { Some(args.batch as f64 / args.rate) } else { None };
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (client, url, next, requests) = (client.clone(), url.clone(), next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, body)) = requests.get(i) else { break };
                let scheduled = match per_request {
                    Some(gap) => {
                        let at = start + Duration::from_secs_f64(gap * i as f64);
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                let resp =
                    client.post(&url).header("content-type", "application/x-ndjson").body(body.clone()).send().await;
                let ok = match resp {
                    Ok(r) => {
                        let status = r.status();
                        let _ = r.bytes().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    hist.saturating_record(scheduled.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    Ok((start.elapsed(), hist, errors))
}
