//! Garbage collection of retired segments: the only code that deletes segment data.
//!
//! A retired segment's file is deleted only when all of these hold, and the reason for keeping it otherwise is
//! reported (`tierd pass run gc --dry-run` lists both):
//! - it was retired by a committed catalog change (state `retired`);
//! - no unexpired lease lists it (leases are what query nodes hold between a lookup and their reads);
//! - no in-process reader still holds a snapshot older than its retirement ([`Catalog::pin`]);
//! - the grace period has passed since its retirement;
//! - the daemon has been up for at least one lease TTL (a lease granted just before a crash may not have reached
//!   the disk, so leases alone cannot be trusted right after a restart).
//!
//! Order: delete the file, fsync the directory (`gc.delete`), then remove the records in one commit. A crash in
//! between leaves retired records whose file is gone; recovery removes them.
//!
//! Side segments of removed duplicates ([`Role::Duplicates`]) are kept until their `keep_until_ms`; a run past it
//! first retires them (one commit), after which they follow the rules above like any retired segment.

use std::collections::HashMap;

use tracing::info;

use crate::catalog::{Catalog, CatalogChange, Retirement, Role, SegmentState};
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;
use crate::layout::{Layout, SegmentId};

#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a retired segment stays on disk after its retirement, at least.
    pub grace_ms: i64,
    /// The lease TTL handed to readers (the wait after a restart).
    pub lease_ttl_ms: i64,
}

/// What GC decided for one retired segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcDecision {
    pub id: SegmentId,
    pub location: String,
    pub bytes: u64,
    pub delete: bool,
    /// A live side segment of duplicates whose retention ended: [`run`] retires it (deleted after the grace).
    pub expire: bool,
    pub reason: String,
}

/// Decides, for every retired segment, whether it may be deleted now (pure given its inputs).
pub fn plan(catalog: &Catalog, now_ms: i64, started_at_ms: i64, cfg: GcConfig) -> Result<Vec<GcDecision>> {
    let snapshot = catalog.snapshot();
    let mut leased: HashMap<SegmentId, (String, i64)> = HashMap::new();
    for (lease_id, rec) in catalog.live_leases(now_ms)? {
        for id in rec.segments {
            let e = leased.entry(id).or_insert((lease_id.clone(), rec.expires_at_ms));
            if rec.expires_at_ms > e.1 {
                *e = (lease_id.clone(), rec.expires_at_ms);
            }
        }
    }
    let oldest_pin = catalog.oldest_pinned_generation();
    let mut out = Vec::new();
    for m in snapshot.segments().filter(|m| m.state != SegmentState::Retired) {
        if let Role::Duplicates { of, keep_until_ms } = m.role {
            if now_ms >= keep_until_ms {
                out.push(GcDecision {
                    id: m.id,
                    location: m.location.clone(),
                    bytes: m.bytes,
                    delete: false,
                    expire: true,
                    reason: format!(
                        "duplicates removed by the rewrite into {of}, kept until {keep_until_ms}: retention ended"
                    ),
                });
            }
        }
    }
    for m in snapshot.segments().filter(|m| m.state == SegmentState::Retired) {
        let Some(r) = &m.retired else { continue };
        let keep = |reason: String| GcDecision {
            id: m.id,
            location: m.location.clone(),
            bytes: m.bytes,
            delete: false,
            expire: false,
            reason,
        };
        let decision = if let Some((lease, until)) = leased.get(&m.id) {
            keep(format!("held by lease {lease} until {until}"))
        } else if oldest_pin.is_some_and(|g| g < r.generation) {
            keep(format!("a reader holds catalog generation {} (< retirement {})", oldest_pin.unwrap(), r.generation))
        } else if now_ms < r.at_ms + cfg.grace_ms {
            keep(format!("grace period until {}", r.at_ms + cfg.grace_ms))
        } else if now_ms < started_at_ms + cfg.lease_ttl_ms {
            keep(format!(
                "restarted recently: leases from before the restart may be lost; wait until {}",
                started_at_ms + cfg.lease_ttl_ms
            ))
        } else {
            GcDecision {
                id: m.id,
                location: m.location.clone(),
                bytes: m.bytes,
                delete: true,
                expire: false,
                reason: format!(
                    "retired at {} by generation {} (replaced by {:?}); no lease or reader holds it; grace passed",
                    r.at_ms,
                    r.generation,
                    r.replaced_by.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
            }
        };
        out.push(decision);
    }
    Ok(out)
}

/// Deletes what [`plan`] allows. Returns every decision (deleted or kept, with reasons).
pub fn run(
    layout: &Layout,
    catalog: &Catalog,
    failpoints: &Failpoints,
    now_ms: i64,
    started_at_ms: i64,
    cfg: GcConfig,
) -> Result<Vec<GcDecision>> {
    let expired: Vec<GcDecision> =
        plan(catalog, now_ms, started_at_ms, cfg)?.into_iter().filter(|d| d.expire).collect();
    if !expired.is_empty() {
        let snapshot = catalog.snapshot();
        let retire = expired.iter().filter_map(|d| snapshot.get(&d.id)).map(|m| {
            let mut r = (**m).clone();
            r.state = SegmentState::Retired;
            r.retired = Some(Retirement { at_ms: now_ms, generation: 0, replaced_by: Vec::new() });
            CatalogChange::Put(r)
        });
        catalog.commit(retire.collect())?;
        for d in &expired {
            info!(segment = %d.id, bytes = d.bytes, "duplicates side segment retired: retention ended");
        }
        metrics::counter!("tierd_gc_expired_duplicates_total").increment(expired.len() as u64);
    }
    let mut decisions = expired;
    decisions.extend(plan(catalog, now_ms, started_at_ms, cfg)?.into_iter().filter(|d| !d.expire));
    let mut removed = Vec::new();
    for d in decisions.iter().filter(|d| d.delete) {
        let path = layout
            .resolve(&d.location)
            .ok_or_else(|| StoreError::Corrupt { id: d.id, message: format!("bad location {:?}", d.location) })?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path, e)),
        }
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| StoreError::io(dir, e))?;
        }
        failpoints.hit("gc.delete").map_err(|e| StoreError::io(&path, e))?;
        info!(segment = %d.id, bytes = d.bytes, "retired segment deleted");
        metrics::counter!("tierd_gc_deleted_segments_total").increment(1);
        metrics::counter!("tierd_gc_deleted_bytes_total").increment(d.bytes);
        removed.push(CatalogChange::Remove(d.id));
    }
    if !removed.is_empty() {
        catalog.commit(removed)?;
    }
    Ok(decisions)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};
    use tierd_codecs::columnar::CodecSpec;
    use tierd_codecs::Event;
    use tierd_policies::{ReencodePlanner, RewritePlanner};

    use super::*;
    use crate::clock::ManualClock;
    use crate::hot::{HotConfig, HotTier, IngestBatch};
    use crate::query::{execute, GroupBy, Query};
    use crate::rewrite::Rewriter;

    const T0: i64 = 1_767_225_600_000;

    fn count(layout: &Layout, snapshot: &crate::CatalogSnapshot) -> u64 {
        let q = Query {
            project: "p".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            event: None,
            filters: vec![],
            group_by: GroupBy::None,
        };
        execute(layout, snapshot, &q).unwrap().total
    }

    /// Three sealed row segments of project `p`: 30 events, ids (and times) 0..25 then 0..5 again (five re-sends
    /// whose properties say `k = 2`; the first copies say `k = 0`).
    fn three_segments_with_resends(
        failpoints: Failpoints,
    ) -> (tempfile::TempDir, Layout, ManualClock, Arc<Catalog>, Arc<Failpoints>) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let failpoints = Arc::new(failpoints);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let hot = HotTier::start(
                layout.clone(),
                catalog.clone(),
                Arc::new(clock.clone()),
                HotConfig::default(),
                failpoints.clone(),
                Arc::new(|_| {}),
            )
            .unwrap();
            for k in 0..3 {
                let events: Vec<Event> = (0..10)
                    .map(|i| Event {
                        event: "E".into(),
                        // ids (and times) 0..25 then 0..5 again: five re-sends with changed properties
                        time_ms: T0 + (k * 10 + i) % 25,
                        distinct_id: "u".into(),
                        insert_id: format!("{}", (k * 10 + i) % 25),
                        properties: json!({"k": k}).as_object().unwrap().clone(),
                    })
                    .collect();
                hot.append(IngestBatch::encode("p".into(), events)).await.unwrap();
            }
            hot.shutdown().await; // seals
        });
        (dir, layout, clock, catalog, failpoints)
    }

    fn reencode_action(catalog: &Catalog) -> tierd_policies::RewriteAction {
        let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
        let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
        let mut actions = planner.plan(T0, &stats);
        assert_eq!(actions.len(), 1);
        actions.remove(0)
    }

    /// Lossless dedup: the removed copies land in a side segment in the same commit; queries and passes do not
    /// see it; GC keeps it until its retention ends, then retires and deletes it.
    #[test]
    fn removed_duplicates_are_kept_until_their_retention_ends() {
        let (_dir, layout, clock, catalog, failpoints) = three_segments_with_resends(Failpoints::none());
        let rewriter = Rewriter::new(
            layout.clone(),
            catalog.clone(),
            Arc::new(clock.clone()),
            failpoints.clone(),
            Default::default(),
        )
        .keep_duplicates_for(60_000);
        let outcome = rewriter.execute(&reencode_action(&catalog)).unwrap();
        assert_eq!((outcome.rows_after, outcome.duplicates_removed), (25, 5));
        let side_id = outcome.duplicates_segment.expect("a side segment");
        let snapshot = catalog.snapshot();
        let side = snapshot.get(&side_id).unwrap().clone();
        assert_eq!(side.role, Role::Duplicates { of: outcome.outputs[0], keep_until_ms: T0 + 60_000 });
        assert_eq!(side.rows, 5);
        // Exactly the first copies of the re-sent ids: properties k = 0, ids 0..5.
        let mut removed: Vec<(String, Value)> = crate::read::read_events(&layout, &side)
            .unwrap()
            .into_iter()
            .map(|e| (e.event.insert_id.clone(), Value::Object(e.event.properties.clone())))
            .collect();
        removed.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<(String, Value)> = (0..5).map(|i| (i.to_string(), json!({"k": 0}))).collect();
        assert_eq!(removed, expected);
        // Queries see the 25 events, lookups only the output; the side segment is listed on its own.
        assert_eq!(count(&layout, &snapshot), 25);
        let ids: Vec<SegmentId> = snapshot.lookup("p", 0, i64::MAX).iter().map(|m| m.id).collect();
        assert_eq!(ids, outcome.outputs);
        let dups: Vec<SegmentId> = snapshot.lookup_duplicates("p", 0, i64::MAX).iter().map(|m| m.id).collect();
        assert_eq!(dups, vec![side_id]);

        let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0 };
        let early = run(&layout, &catalog, &failpoints, T0 + 59_999, 0, cfg).unwrap();
        assert!(early.iter().all(|d| d.id != side_id), "{early:?}");
        assert!(layout.resolve(&side.location).unwrap().exists());
        let due = run(&layout, &catalog, &failpoints, T0 + 60_000, 0, cfg).unwrap();
        let expired: Vec<_> = due.iter().filter(|d| d.id == side_id).collect();
        assert_eq!(expired.len(), 2, "expired, then deleted past a zero grace: {due:?}");
        assert!(expired[0].expire && expired[1].delete, "{expired:?}");
        assert!(!layout.resolve(&side.location).unwrap().exists());
        assert!(catalog.snapshot().get(&side_id).is_none());
        assert_eq!(count(&layout, &catalog.snapshot()), 25);
    }

    /// A rewrite that fails after writing its output and side segment removes both and leaves the inputs live.
    #[test]
    fn a_failed_lossless_rewrite_leaves_no_file_behind() {
        for point in ["rewrite.intent", "rewrite.write", "rewrite.verify"] {
            let fp = Failpoints::parse(&format!("{point}=error@2")).unwrap();
            let (_dir, layout, clock, catalog, failpoints) = three_segments_with_resends(fp);
            let before: Vec<_> = catalog.snapshot().segments().cloned().collect();
            let rewriter =
                Rewriter::new(layout.clone(), catalog.clone(), Arc::new(clock.clone()), failpoints, Default::default())
                    .keep_duplicates_for(60_000);
            // The failpoint fires on its second hit: the side segment's step, after the output's succeeded.
            let err = rewriter.execute(&reencode_action(&catalog)).unwrap_err();
            assert!(err.to_string().contains(point), "{point}: {err}");
            let after: Vec<_> = catalog.snapshot().segments().cloned().collect();
            assert_eq!(before, after, "{point}");
            assert!(catalog.intents().unwrap().is_empty(), "{point}");
            let files = std::fs::read_dir(layout.hot_dir().join("p")).unwrap().count();
            assert_eq!(files, before.len(), "{point}: only the inputs remain");
            assert_eq!(count(&layout, &catalog.snapshot()), 25);
        }
    }

    /// A query that pinned its snapshot before a rewrite keeps reading the retired inputs, GC keeps them while the
    /// pin or a lease lives, and deletes them once neither does.
    #[test]
    fn retired_segments_outlive_pins_and_leases() {
        let (_dir, layout, clock, catalog, failpoints) = three_segments_with_resends(Failpoints::none());
        let before = catalog.pin();
        assert_eq!(count(&layout, &before), 25);
        let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
        let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
        let actions = planner.plan(T0, &stats);
        assert_eq!(actions.len(), 1);
        let rewriter = Rewriter::new(
            layout.clone(),
            catalog.clone(),
            Arc::new(clock.clone()),
            failpoints.clone(),
            CodecSpec::default(),
        );
        let outcome = rewriter.execute(&actions[0]).unwrap();
        assert_eq!((outcome.rows_before, outcome.rows_after), (30, 25));
        let input = outcome.inputs[0];
        // Both views give the same answer: the pinned one reads the retired input, the new one the output.
        assert_eq!(count(&layout, &catalog.snapshot()), 25);
        assert_eq!(count(&layout, &before), 25);

        let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0 };
        let decide = |now| plan(&catalog, now, 0, cfg).unwrap();
        let d = decide(T0);
        assert!(d.iter().all(|d| !d.delete && d.reason.contains("reader")), "{d:?}");
        let lease = catalog.grant_lease(T0, 60_000, 1, vec![input]).unwrap();
        drop(before);
        let d = decide(T0);
        let held = d.iter().find(|d| d.id == input).unwrap();
        assert!(!held.delete && held.reason.contains(&lease.id), "{held:?}");
        // Grace and the restart rule hold it too.
        let graced = plan(&catalog, T0 + 60_001, 0, GcConfig { grace_ms: 3_600_000, lease_ttl_ms: 0 }).unwrap();
        assert!(graced.iter().all(|d| !d.delete && d.reason.contains("grace")), "{graced:?}");
        let fresh = plan(&catalog, T0 + 60_001, T0 + 60_000, GcConfig { grace_ms: 0, lease_ttl_ms: 10_000 }).unwrap();
        assert!(fresh.iter().all(|d| !d.delete && d.reason.contains("restarted")), "{fresh:?}");
        // Once the lease expired: deleted, files gone, answer unchanged.
        let done = run(&layout, &catalog, &failpoints, T0 + 60_001, 0, cfg).unwrap();
        assert_eq!(done.iter().filter(|d| d.delete).count(), outcome.inputs.len(), "{done:?}");
        for d in &done {
            assert!(!layout.resolve(&d.location).unwrap().exists());
            assert!(catalog.snapshot().get(&d.id).is_none());
        }
        assert_eq!(count(&layout, &catalog.snapshot()), 25);
    }
}
