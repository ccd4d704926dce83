//! The rebuild: the pure decision (superseded or live) against a model history of rewrites, and the whole rebuild
//! of a store whose catalog was truncated, compared record by record with the catalog it replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use tierd_codecs::{Event, RowFilter};

use super::*;
use crate::catalog::{open_retrying, Format, Placement};
use crate::clock::ManualClock;
use crate::cold::VerifyMode;
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::moves::Mover;
use crate::rewrite::Rewriter;
use crate::testing::{context_with, memory_cold, reencode_action, resend_batch, T0};

fn id(n: u64) -> SegmentId {
    SegmentId(ulid::Ulid::from_parts(n, 0))
}

fn copy(n: u64, tier: Tier, path: &str, inputs: Option<Vec<u64>>) -> FoundCopy {
    FoundCopy {
        id: id(n),
        location: Location { tier, path: path.into() },
        bytes: 100 + n,
        checksum: n as u32,
        inputs: inputs.map(|i| i.into_iter().map(id).collect()),
        erase_inputs: false,
    }
}

#[test]
fn copies_that_differ_keep_the_cold_content_and_one_copy_serves_per_tier() {
    let mut bad = copy(1, Tier::Hot, "hot/p/X.parquet", None);
    bad.checksum = 999;
    let copies = vec![
        bad,
        copy(1, Tier::Cold, "segments/p/2026-01-01/X.B.parquet", None),
        copy(1, Tier::Hot, "hot/p/X.A.parquet", None),
        copy(1, Tier::Hot, "hot/p/X.C.parquet", None),
    ];
    let d = decide(&copies);
    assert_eq!(d.rejected.len(), 1, "{d:?}");
    assert_eq!(d.rejected[0].location.path, "hot/p/X.parquet");
    let f = &d.segments[&id(1)];
    assert_eq!(f.checksum, 1);
    assert_eq!(
        f.locations,
        vec![Location::hot("hot/p/X.C.parquet"), Location::cold("segments/p/2026-01-01/X.B.parquet")]
    );
    assert_eq!(f.dropped, vec![Location::hot("hot/p/X.A.parquet")]);
    assert!(f.is_live());
}

#[test]
fn an_input_claimed_by_two_outputs_stays_live_and_old_files_supersede_nothing() {
    let copies = vec![
        copy(1, Tier::Hot, "a", None),
        copy(2, Tier::Hot, "b", Some(vec![1])),
        copy(3, Tier::Hot, "c", Some(vec![1])),
        copy(4, Tier::Hot, "d", None),
        // An old file (no lineage) next to its input: supersedes nothing.
        copy(5, Tier::Hot, "e", None),
        copy(6, Tier::Hot, "f", Some(vec![4, 6])),
    ];
    let d = decide(&copies);
    assert!(d.segments[&id(1)].is_live());
    assert_eq!(d.contested, vec![(id(1), vec![id(2), id(3)])]);
    assert_eq!(d.segments[&id(4)].superseded_by, vec![id(6)]);
    assert!(d.segments[&id(5)].is_live() && d.segments[&id(6)].is_live(), "never its own input");
}

/// A history of rewrites: segment `i` is created by ingest or by a rewrite of live segments; some rewrites are
/// user deletions; then gc has deleted some retired segments' files (never a live one's), and a crash may have
/// left the output of a rewrite that never committed (its inputs still live in truth).
#[derive(Debug, Clone)]
struct History {
    /// Per segment: its inputs (empty: ingested), whether its rewrite was a deletion, whether it committed.
    segments: Vec<(Vec<usize>, bool, bool)>,
    /// Retired segments whose files gc deleted.
    gone: BTreeSet<usize>,
    /// Whether files have lineage (false: every file is an old one).
    lineage: bool,
    /// A permutation seed for the order the files are listed in.
    order: u64,
}

fn history() -> impl Strategy<Value = History> {
    (2usize..30, any::<u64>(), any::<bool>(), prop::collection::vec(any::<u32>(), 60)).prop_map(
        |(n, order, no_lineage, rolls)| {
            let mut segments: Vec<(Vec<usize>, bool, bool)> = Vec::new();
            let mut live: Vec<usize> = Vec::new();
            for i in 0..n {
                let r = rolls[i % rolls.len()] as usize;
                let take = if live.is_empty() || r.is_multiple_of(3) { 0 } else { 1 + r % live.len().min(3) };
                let mut inputs = Vec::new();
                for k in 0..take {
                    let at = (r / 7 + k * 5) % live.len();
                    inputs.push(live.remove(at));
                    if live.is_empty() {
                        break;
                    }
                }
                // The last rewrite may have crashed before its commit: its inputs stay live in truth.
                let committed = !(i == n - 1 && !inputs.is_empty() && r.is_multiple_of(2));
                if !committed {
                    live.extend(inputs.iter().copied());
                }
                segments.push((inputs, r.is_multiple_of(5), committed));
                live.push(i);
            }
            let retired: BTreeSet<usize> = segments.iter().filter(|s| s.2).flat_map(|s| s.0.iter().copied()).collect();
            let gone = retired.iter().copied().filter(|i| rolls[(i * 11) % rolls.len()] % 3 == 0).collect();
            History { segments, gone, lineage: !no_lineage || n % 2 == 0, order }
        },
    )
}

fn files_of(h: &History) -> Vec<FoundCopy> {
    let mut files: Vec<FoundCopy> = (0..h.segments.len())
        .filter(|i| !h.gone.contains(i))
        .map(|i| {
            let (inputs, erase, _) = &h.segments[i];
            let inputs = (h.lineage && !inputs.is_empty()).then(|| inputs.iter().map(|&j| j as u64 + 1).collect());
            FoundCopy { erase_inputs: *erase, ..copy(i as u64 + 1, Tier::Hot, &format!("hot/p/{i}.parquet"), inputs) }
        })
        .collect();
    // Shuffle by a seeded rotation and reversal: order must not matter.
    let k = (h.order as usize) % files.len().max(1);
    files.rotate_left(k);
    if h.order % 2 == 1 {
        files.reverse();
    }
    files
}

proptest! {
    #[test]
    fn superseded_exactly_when_a_present_output_lists_it(h in history()) {
        let files = files_of(&h);
        let d = decide(&files);
        let mut sorted = files.clone();
        sorted.sort_by(|a, b| a.location.path.cmp(&b.location.path));
        prop_assert_eq!(&decide(&sorted), &d, "the input order changed the decision");
        prop_assert_eq!(d.segments.len(), files.len(), "every file is decided, once");
        prop_assert!(d.rejected.is_empty());
        let present: BTreeSet<usize> = (0..h.segments.len()).filter(|i| !h.gone.contains(i)).collect();
        for &i in &present {
            let fate = &d.segments[&id(i as u64 + 1)];
            // Outputs present that list i (committed or not: an uncommitted output holds the same rows).
            let claimants: Vec<SegmentId> = present
                .iter()
                .filter(|&&j| h.lineage && h.segments[j].0.contains(&i))
                .map(|&j| id(j as u64 + 1))
                .collect();
            if claimants.len() == 1 {
                prop_assert_eq!(&fate.superseded_by, &claimants);
                let erase = present.iter().any(|&j| h.segments[j].0.contains(&i) && h.segments[j].1);
                prop_assert_eq!(fate.erase, erase);
            } else {
                prop_assert!(fate.is_live(), "segment {} superseded with {} claimants", i, claimants.len());
            }
        }
        // No data leaves service: every segment live in truth is live, or replaced by a present output that
        // is itself decided live or replaced in turn (the rows are in service somewhere).
        let truly_live: BTreeSet<usize> = (0..h.segments.len())
            .filter(|i| !h.segments.iter().any(|s| s.2 && s.0.contains(i)))
            .collect();
        for &i in &truly_live {
            prop_assert!(!h.gone.contains(&i));
            let mut at = i;
            let mut steps = 0;
            while let Some(by) = d.segments[&id(at as u64 + 1)].superseded_by.first() {
                at = (by.0.timestamp_ms() - 1) as usize;
                steps += 1;
                prop_assert!(steps <= h.segments.len(), "a cycle of replacements");
            }
            prop_assert!(d.segments[&id(at as u64 + 1)].is_live());
        }
    }
}

// ---- the whole rebuild over a real store ----

fn events(users: &[&str], n: i64, v: i64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            event: "E".into(),
            time_ms: T0 + 1_000 + i,
            distinct_id: users[i as usize % users.len()].into(),
            insert_id: format!("late-{i}"),
            properties: json!({"v": v}).as_object().unwrap().clone(),
        })
        .collect()
}

/// What must survive a rebuild of a record (placement and the times of the rebuild itself may differ).
fn essence(m: &SegmentMeta) -> String {
    let r = m.retired.as_ref().map(|r| (r.replaced_by.clone(), r.erase));
    format!(
        "{} {} {} {:?} {:?} {} {} {}..{} rows {} bytes {} crc {} seq {}..{} created {} {:?} {:?} {:?}",
        m.id,
        m.project,
        m.day,
        m.state,
        m.format,
        m.codec,
        m.role.is_data(),
        m.min_time_ms,
        m.max_time_ms,
        m.rows,
        m.bytes,
        m.checksum,
        m.min_seq,
        m.max_seq,
        m.created_at_ms,
        r,
        m.blocks,
        m.role
    )
}

fn copies_of(m: &SegmentMeta) -> BTreeSet<Location> {
    m.all_locations().cloned().collect()
}

#[test]
fn a_truncated_catalog_is_rebuilt_equal_to_the_one_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let clock = ManualClock::new(T0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cold = memory_cold(VerifyMode::Auto);
    let original: BTreeMap<SegmentId, SegmentMeta> = {
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let ctx = context_with(&layout, &catalog, &clock, "", cold.clone(), rt.handle().clone());
        let ingest = |batches: Vec<Vec<Event>>| {
            rt.block_on(async {
                let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
                for b in batches {
                    hot.append(IngestBatch::encode("p".into(), b)).await.unwrap();
                }
                hot.shutdown().await; // seals
            })
        };
        // Re-sends: the re-encode's dedup keeps the removed copies in a side segment.
        ingest((0..3).map(resend_batch).collect());
        let rewriter = Rewriter::new(ctx.clone(), Default::default()).keep_duplicates_for(86_400_000);
        let out = rewriter.execute(&reencode_action(&catalog)).unwrap();
        assert!(out.duplicates_segment.is_some(), "{out:?}");
        // The output goes cold: its hot copy is dropped (the file stays until gc), then comes back as both.
        Mover::new(ctx.clone()).execute(out.outputs[0], Placement::Cold).unwrap();
        // A later row segment; a user deletion rewrites it without u1's rows (its input retired `erase`).
        ingest(vec![events(&["u1", "u2"], 10, 1)]);
        let late = catalog.snapshot().segments().find(|m| m.format == Format::Rows && m.is_live()).unwrap().id;
        let filter = RowFilter::DistinctIds { ids: ["u1".to_string()].into(), max_seq: u64::MAX };
        let f = rewriter.erase_rows(late, &filter).unwrap();
        assert!(f.output.is_some(), "{f:?}");
        // And one open row segment with a torn tail (a write past the last commit).
        ingest(vec![events(&["u3"], 4, 2)]);
        catalog.snapshot().segments().map(|m| (m.id, (**m).clone())).collect()
    };
    let open_row = original.values().filter(|m| m.format == Format::Rows && m.is_live()).count();
    assert_eq!(open_row, 1);
    let rows_path =
        original.values().find(|m| m.format == Format::Rows && m.is_live()).unwrap().locations[0].path.clone();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(layout.root().join(&rows_path)).unwrap();
        f.write_all(&[7u8; 33]).unwrap();
    }
    // Files that describe nothing usable: a torn Parquet output on the hot disk, junk in the bucket.
    let junk_id = SegmentId::generate(T0);
    std::fs::write(layout.root().join(format!("hot/p/{junk_id}.parquet")), b"PAR1 torn").unwrap();
    let junk_key = format!("segments/p/2026-01-01/{junk_id}.{}.parquet", SegmentId::generate(T0));
    rt.block_on(cold.put_new(&junk_key, bytes::Bytes::from_static(b"junk"))).unwrap();

    // A healthy catalog is not rebuilt without --force; a held one not at all.
    {
        let held = open_retrying(&layout.catalog_dir());
        let e = rebuild(&layout, &cold, rt.handle(), &clock, true).unwrap_err();
        assert!(e.to_string().contains("a tierd daemon is running"), "{e}");
        drop(held);
    }
    let e = rebuild(&layout, &cold, rt.handle(), &clock, false).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");

    // Every file of the catalog truncated.
    for entry in std::fs::read_dir(layout.catalog_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::File::create(&p).unwrap();
        }
    }
    clock.set_ms(T0 + 60_000);
    let report = rebuild(&layout, &cold, rt.handle(), &clock, false).unwrap();
    let kept = report.old_catalog.clone().expect("the old catalog is kept");
    assert!(kept.is_dir() && kept.file_name().unwrap().to_string_lossy().starts_with("catalog.broken-"));

    let catalog = open_retrying(&layout.catalog_dir());
    let rebuilt: BTreeMap<SegmentId, SegmentMeta> =
        catalog.snapshot().segments().map(|m| (m.id, (**m).clone())).collect();
    assert_eq!(rebuilt.keys().collect::<Vec<_>>(), original.keys().collect::<Vec<_>>(), "{report:#?}");
    for (id, want) in &original {
        let got = &rebuilt[id];
        // An open segment comes back sealed, as recovery seals it.
        let want_state = if want.state == SegmentState::Open { SegmentState::Sealed } else { want.state };
        assert_eq!(essence(got), essence(&SegmentMeta { state: want_state, ..want.clone() }), "{report:#?}");
        // Every copy that exists is recorded: the dropped hot copy of the moved segment serves again.
        assert_eq!(copies_of(got), copies_of(want), "segment {id}");
        assert!(got.dropped.is_empty(), "one copy per tier: nothing to drop");
    }
    let moved = original.values().find(|m| m.cold_key().is_some()).unwrap();
    assert_eq!(rebuilt[&moved.id].placement(), Placement::Both);
    assert_eq!(report.tails_cut, vec![(rows_path.clone(), 33)]);
    assert_eq!(
        std::fs::metadata(layout.root().join(&rows_path)).unwrap().len(),
        rebuilt.values().find(|m| m.locations[0].path == rows_path).unwrap().bytes
    );
    let reasons: Vec<&str> = report.quarantined.iter().map(|q| q.location.as_str()).collect();
    assert_eq!(reasons, vec![format!("hot:hot/p/{junk_id}.parquet"), format!("cold:{junk_key}")], "{report:#?}");
    assert!(layout.quarantine_dir().join(format!("{}/hot/p/{junk_id}.parquet", T0 + 60_000)).is_file());
    let objects: Vec<String> = rt.block_on(cold.list("")).unwrap().into_iter().map(|o| o.key).collect();
    assert!(objects.contains(&format!("quarantine/{}/{junk_key}", T0 + 60_000)), "{objects:?}");
    assert!(!objects.contains(&junk_key));
    assert_eq!(report.superseded.len(), original.values().filter(|m| !m.is_live()).count());
    assert_eq!(report.legacy_files, 0);
    assert!(report.generation > 0);
}
