//! The operations cut at every durable step: ingest, a rewrite, a move to cold and back, garbage collection, a
//! restore from the trash.

use tierd_policies::{ReencodePlanner, RewritePlanner};

use super::*;
use crate::catalog::{Format, Placement};
use crate::clock::Clock;
use crate::gc::{Gc, GcConfig};
use crate::layout::SegmentId;
use crate::moves::Mover;
use crate::rewrite::Rewriter;
use crate::trash::{RestoreStatus, Trash};

/// Re-encodes every sealed row segment (one action per day); stops once the power is off.
fn reencode_all(m: &Machine) {
    let stats: Vec<_> = m.catalog().snapshot().segments().map(|s| s.planner_stats()).collect();
    let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
    let mut actions = planner.plan(m.clock.now_ms(), &stats);
    actions.sort_by_key(|a| a.day);
    let rewriter = Rewriter::new(m.ctx(), Default::default());
    for action in actions {
        if m.fs.is_off() {
            break;
        }
        let _ = rewriter.execute(&action);
    }
}

fn live_columnar(m: &Machine) -> Vec<SegmentId> {
    let snapshot = m.catalog().snapshot();
    let mut ids: Vec<SegmentId> = snapshot
        .segments()
        .filter(|s| s.state == SegmentState::Sealed && s.format == Format::Parquet)
        .map(|s| s.id)
        .collect();
    ids.sort();
    ids
}

/// Moves every live columnar segment to `target`; stops once the power is off.
fn move_all(m: &Machine, target: Placement) {
    let mover = Mover::new(m.ctx());
    for id in live_columnar(m) {
        if m.fs.is_off() {
            break;
        }
        let _ = mover.execute(id, target);
    }
}

fn gc(m: &Machine) -> Gc {
    let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: DAY_MS, erase_trash_retention_ms: 0 };
    Gc::new(m.ctx(), cfg)
}

/// Batches 0..4 through one writer session: segment files created with their headers, frames appended, fsynced and
/// committed (odd batches on two days, so two segments in one commit), then every segment sealed.
#[test]
fn ingest_loses_nothing_acknowledged_at_any_power_cut() {
    let points = at_every_step(
        "ingest",
        |_, _| {},
        |m, ledger| m.ingest(ledger, &[0, 1, 2, 3]),
        |m, ledger| m.ingest(ledger, &[10, 11]),
    );
    assert!(points >= 20, "{points} crash points");
}

/// Two sealed row segments per day re-encoded to Parquet (intent, create, write, fsync, directory fsyncs, read
/// back, commit); a cut anywhere leaves either the inputs or the output, never both and never neither.
#[test]
fn a_rewrite_loses_nothing_at_any_power_cut() {
    at_every_step(
        "rewrite",
        |m, ledger| {
            m.ingest(ledger, &[0, 1]);
            m.ingest(ledger, &[2, 3]);
        },
        |m, _| reencode_all(m),
        |m, _| {
            reencode_all(m);
            let snapshot = m.catalog().snapshot();
            let rows = snapshot.segments().filter(|s| s.state != SegmentState::Retired && s.format == Format::Rows);
            assert_eq!(rows.count(), 0, "the rewrite finishes after the restart");
        },
    );
}

/// Columnar segments moved to cold (upload, verify, commit dropping the hot copy), then back to hot (restore:
/// intent, hot copy written and synced, commit).
#[test]
fn a_move_to_cold_and_back_loses_nothing_at_any_power_cut() {
    at_every_step(
        "move to cold and back",
        |m, ledger| {
            m.ingest(ledger, &[0, 1, 2]);
            reencode_all(m);
        },
        |m, _| {
            move_all(m, Placement::Cold);
            move_all(m, Placement::Hot);
        },
        |m, _| {
            move_all(m, Placement::Cold);
            move_all(m, Placement::Hot);
            let snapshot = m.catalog().snapshot();
            for id in live_columnar(m) {
                assert_eq!(snapshot.get(&id).unwrap().placement(), Placement::Hot);
            }
        },
    );
}

/// Garbage collection of retired row segments and dropped hot copies: each saved record and each copy moved to the
/// trash (renames, directory fsyncs), then one commit forgetting them.
#[test]
fn gc_loses_nothing_at_any_power_cut() {
    at_every_step(
        "gc",
        |m, ledger| {
            m.ingest(ledger, &[0, 1, 2]);
            reencode_all(m);
            move_all(m, Placement::Cold);
        },
        |m, ledger| {
            ledger.kept = out_of_service_hot_copies(m);
            assert!(ledger.kept.len() >= 4, "{:?}", ledger.kept);
            let _ = gc(m).run(m.clock.now_ms(), 0);
        },
        |m, _| {
            gc(m).run(m.clock.now_ms(), 0).unwrap();
            let snapshot = m.catalog().snapshot();
            assert!(
                snapshot.segments().all(|s| s.state != SegmentState::Retired && s.dropped.is_empty()),
                "gc finishes after the restart"
            );
        },
    );
}

/// The inputs of a re-encode, trashed by gc, put back from the trash (per segment: the trashed copy read and checked,
/// an intent, the hot copy written create-only and synced, the directory synced, one commit). A cut anywhere leaves
/// each segment either absent from the catalog with its trashed copy whole, or live with a verified hot copy; the
/// restore asked again after the reboot brings back the rest.
#[test]
fn a_restore_from_the_trash_loses_nothing_at_any_power_cut() {
    let trash_batch = |m: &Machine| -> (i64, Vec<SegmentId>) {
        let batches = Trash::new(m.ctx()).list().unwrap();
        let batch_ms = batches.iter().map(|t| t.batch_ms).max().expect("gc trashed the re-encoded inputs");
        (batch_ms, batches.iter().filter(|t| t.batch_ms == batch_ms).map(|t| t.id).collect())
    };
    let points = at_every_step(
        "restore from the trash",
        |m, ledger| {
            m.ingest(ledger, &[0, 1]);
            m.ingest(ledger, &[2, 3]);
            reencode_all(m);
            ledger.kept = out_of_service_hot_copies(m);
            gc(m).run(m.clock.now_ms(), 0).unwrap();
            let (_, ids) = trash_batch(m);
            assert!(ids.len() >= 4, "{ids:?}");
            ledger.restored = ids.into_iter().collect();
        },
        |m, _| {
            let (batch_ms, _) = trash_batch(m);
            let _ = Trash::new(m.ctx()).restore(batch_ms, &[], m.clock.now_ms());
        },
        |m, ledger| {
            let (batch_ms, _) = trash_batch(m);
            let outcomes = Trash::new(m.ctx()).restore(batch_ms, &[], m.clock.now_ms()).unwrap();
            assert_eq!(outcomes.len(), ledger.restored.len(), "{outcomes:?}");
            for o in &outcomes {
                assert!(matches!(o.outcome, RestoreStatus::Restored | RestoreStatus::InCatalog), "{o:?}");
            }
            let snapshot = m.catalog().snapshot();
            for id in &ledger.restored {
                let meta = snapshot.get(id).unwrap_or_else(|| panic!("{id} was not restored"));
                assert_eq!(meta.state, SegmentState::Sealed, "{id}");
            }
        },
    );
    assert!(points >= 8, "{points} crash points");
}
