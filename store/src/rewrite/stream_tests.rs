//! The streaming rewrite over a real hot directory, with memory limits small enough that a few hundred events
//! spill sorted runs and merge in several levels: the outputs hold exactly what the in-memory dedup keeps and
//! removes, nothing is left in the spill directory, and a failure or a refusal leaves the store as it was.

use std::sync::Arc;

use serde_json::json;
use tierd_codecs::{dedup_split, Event, StoredEvent};
use tierd_policies::memory::StreamLimits;
use tierd_policies::{RewriteAction, RewriteKind};

use super::*;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::durable::{FaultyFs, FsFault, FsFaultKind, FsOp};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::testing::{context, T0};
use crate::OsFs;

struct Store {
    _dir: tempfile::TempDir,
    layout: Layout,
    clock: ManualClock,
    catalog: Arc<Catalog>,
}

/// Event `i` of a workload whose properties take every kind, some keys in most events (shredded), some rare
/// (spilled to `_props`), some changing kind; `version` tells a re-send from the first copy.
fn event(i: u64, version: u64) -> Event {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
    let mut p = serde_json::Map::new();
    p.insert("plan".into(), json!(["free", "pro", "team"][(h % 3) as usize]));
    p.insert("n".into(), json!(h % 1000));
    if !h.is_multiple_of(4) {
        p.insert("price".into(), json!((h % 10_000) as f64 / 100.0 + 0.5));
    }
    if h.is_multiple_of(3) {
        p.insert("flag".into(), json!(h.is_multiple_of(2)));
    }
    if h.is_multiple_of(7) {
        p.insert(format!("rare{}", h % 5), json!({"deep": [i, "x"]}));
    }
    p.insert("mixed".into(), if h.is_multiple_of(2) { json!("s") } else { json!(h % 100) });
    if h.is_multiple_of(11) {
        p.insert("big".into(), json!(u64::MAX - h));
    }
    p.insert("version".into(), json!(version));
    Event {
        event: ["Signup", "Purchase", "View", "Login"][(h % 4) as usize].into(),
        // Seconds: many events of one name share a time, so dedup runs span several events.
        time_ms: T0 + ((h % 600) * 1000) as i64,
        distinct_id: format!("u{}", h % 37),
        insert_id: format!("i{i}"),
        properties: p,
    }
}

/// `segments` sealed row segments of project `p`, one per writer session, `per` events each in requests (frames)
/// of 40; every segment after the first re-sends a fifth of the previous one's events (new version, so the copies
/// differ).
fn row_segments(segments: u64, per: u64) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let clock = ManualClock::new(T0);
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let store = Store { _dir: dir, layout, clock, catalog };
    for s in 0..segments {
        let mut batch: Vec<Event> = (s * per..(s + 1) * per).map(|i| event(i, 0)).collect();
        if s > 0 {
            batch.extend(((s - 1) * per..(s - 1) * per + per / 5).map(|i| event(i, s)));
        }
        crate::testing::runtime().block_on(async {
            let hot = HotTier::start(&store.ctx(""), HotConfig::default(), Arc::new(|_| {})).unwrap();
            for chunk in batch.chunks(40) {
                hot.append(IngestBatch::encode("p".into(), chunk.to_vec())).await.unwrap();
            }
            hot.shutdown().await;
        });
    }
    store
}

/// Limits that make a few hundred events spill runs of a few dozen and merge two streams at a time: a hot
/// Parquet input or a spill file holds a row group, two blocks of 1 MiB and a decoded batch (4 MiB).
fn tiny() -> StreamLimits {
    StreamLimits { sort_bytes: 16 << 10, merge_bytes: 15 << 20 }
}

impl Store {
    fn ctx(&self, failpoints: &str) -> StoreContext {
        context(&self.layout, &self.catalog, &self.clock, failpoints)
    }

    fn rewriter(&self, limits: Option<StreamLimits>) -> Rewriter {
        let r = Rewriter::new(self.ctx(""), Default::default()).keep_duplicates_for(60_000);
        match limits {
            Some(l) => r.with_stream_limits(l),
            None => r,
        }
    }

    fn live(&self, format: Format) -> Vec<Arc<SegmentMeta>> {
        let snapshot = self.catalog.snapshot();
        let mut live: Vec<_> = snapshot
            .segments()
            .filter(|m| m.state == SegmentState::Sealed && m.format == format && m.role == Role::Data)
            .cloned()
            .collect();
        live.sort_by_key(|m| m.id);
        live
    }

    fn events_of(&self, metas: &[Arc<SegmentMeta>]) -> Vec<StoredEvent> {
        metas.iter().flat_map(|m| crate::read::read_events(&self.layout, m).unwrap()).collect()
    }

    fn action(&self, kind: RewriteKind, inputs: &[Arc<SegmentMeta>]) -> RewriteAction {
        let mut ids: Vec<String> = inputs.iter().map(|m| m.id.to_string()).collect();
        ids.sort();
        RewriteAction {
            kind,
            project: "p".into(),
            day: inputs[0].day,
            inputs: ids,
            output_codec: "zstd-3".into(),
            bytes_before: inputs.iter().map(|m| m.bytes).sum(),
            reason: "test".into(),
        }
    }

    fn spill_files(&self) -> usize {
        std::fs::read_dir(self.layout.spill_dir()).map_or(0, |d| d.count())
    }

    fn parquet_files(&self) -> usize {
        let dir = self.layout.hot_dir().join("p");
        std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "parquet").count()
    }
}

/// Events sorted by seq, each as its `Debug` text (tells integers from floats, absent from null).
fn exact(events: &[StoredEvent]) -> Vec<String> {
    let mut events: Vec<&StoredEvent> = events.iter().collect();
    events.sort_by_key(|e| e.seq);
    events.iter().map(|e| format!("{e:?}")).collect()
}

/// Runs `action` and checks its output and side segment against the in-memory dedup of `inputs`.
fn check_rewrite(store: &Store, rewriter: &Rewriter, action: &RewriteAction, inputs: Vec<StoredEvent>) -> u64 {
    let (kept, removed) = dedup_split("p", inputs);
    let outcome = rewriter.execute(action).unwrap();
    let snapshot = store.catalog.snapshot();
    let output = snapshot.get(&outcome.outputs[0]).unwrap().clone();
    assert_eq!(exact(&store.events_of(std::slice::from_ref(&output))), exact(&kept));
    assert_eq!((outcome.rows_after, outcome.duplicates_removed), (kept.len() as u64, removed.len() as u64));
    assert_eq!(
        (output.min_seq, output.max_seq),
        (kept.iter().map(|e| e.seq).min().unwrap(), kept.iter().map(|e| e.seq).max().unwrap())
    );
    match outcome.duplicates_segment {
        Some(side) => {
            let side = snapshot.get(&side).unwrap().clone();
            assert_eq!(exact(&store.events_of(&[side])), exact(&removed));
        }
        None => assert!(removed.is_empty()),
    }
    // Sorted by (event, time, seq), as every columnar segment; block checksums recorded; nothing left behind.
    let events = crate::read::read_events(&store.layout, &output).unwrap();
    let key = |e: &StoredEvent| (e.event.event.clone(), e.event.time_ms, e.seq);
    assert!(events.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    assert!(output.blocks.is_some());
    assert_eq!(store.spill_files(), 0, "spill files are deleted after use");
    assert!(store.catalog.intents().unwrap().is_empty());
    outcome.spill_files
}

#[test]
fn a_reencode_that_spills_runs_and_merges_them_in_levels_equals_the_in_memory_dedup() {
    let store = row_segments(4, 300);
    let inputs = store.live(Format::Rows);
    assert_eq!(inputs.len(), 4);
    let events = store.events_of(&inputs);
    // The in-memory encoder's decision over the same rows: the survey of spilled runs is exact.
    let info = tierd_codecs::columnar::SegmentInfo { segment_id: "x".into(), project: "p".into(), day: 0 };
    let whole = tierd_codecs::columnar::encode(&info, &events, &CodecSpec::default()).unwrap();
    let expected = tierd_codecs::columnar::read_meta(&whole).unwrap().columns;
    let action = store.action(RewriteKind::Reencode, &inputs);
    let spills = check_rewrite(&store, &store.rewriter(Some(tiny())), &action, events);
    // Runs of 16 KiB out of 1,380 events, then, since only two streams fit a merge, intermediate merges two at a
    // time (each one stream fewer) until two are left: runs + (runs - 2) spill files, runs well above 2.
    assert!(spills >= 10 && spills.is_multiple_of(2), "{spills} spill files");
    let output = store.live(Format::Parquet).remove(0);
    let meta =
        tierd_codecs::columnar::read_meta(&crate::read::read_committed(&store.layout, &output).unwrap()).unwrap();
    assert_eq!(meta.columns, expected);
    assert!(meta.columns.len() >= 4 && !meta.props_keys.is_empty(), "{meta:?}");
}

#[test]
fn a_compaction_of_many_parquet_inputs_merges_in_levels_and_equals_the_in_memory_dedup() {
    let store = row_segments(5, 200);
    // One Parquet segment per row segment (each deduplicated on its own), then all five compacted two by two.
    for input in store.live(Format::Rows) {
        store.rewriter(None).execute(&store.action(RewriteKind::Reencode, &[input])).unwrap();
    }
    let parquet = store.live(Format::Parquet);
    assert_eq!(parquet.len(), 5);
    let events = store.events_of(&parquet);
    let action = store.action(RewriteKind::Compact, &parquet);
    let limits = StreamLimits { sort_bytes: 16 << 10, merge_bytes: 13 << 20 };
    let spills = check_rewrite(&store, &store.rewriter(Some(limits)), &action, events);
    assert!(spills >= 3, "five inputs merged two at a time: {spills} spill files");
    assert_eq!(store.live(Format::Parquet).len(), 1);
}

#[test]
fn a_recompression_streams_row_groups_into_the_new_codec() {
    let store = row_segments(2, 300);
    let rows = store.live(Format::Rows);
    store.rewriter(None).execute(&store.action(RewriteKind::Reencode, &rows)).unwrap();
    let input = store.live(Format::Parquet).remove(0);
    let before = store.events_of(std::slice::from_ref(&input));
    let spec = CodecSpec { row_group_rows: 100, ..Default::default() };
    // Several row groups in the input, so the recompression goes through more than one.
    let small = Rewriter::new(store.ctx(""), spec);
    small.execute(&store.action(RewriteKind::Recompress, &[input])).unwrap();
    let input = store.live(Format::Parquet).remove(0);
    assert!(input.rows > 100);
    let read_meta = |m: &SegmentMeta| {
        tierd_codecs::columnar::read_meta(&crate::read::read_committed(&store.layout, m).unwrap()).unwrap()
    };
    assert_eq!(read_meta(&input).row_groups, (input.rows as usize).div_ceil(100));
    let mut action = store.action(RewriteKind::Recompress, std::slice::from_ref(&input));
    action.output_codec = "zstd-19".into();
    let outcome = store.rewriter(None).execute(&action).unwrap();
    let output = store.catalog.snapshot().get(&outcome.outputs[0]).unwrap().clone();
    assert_eq!(output.codec, Codec::Zstd(19));
    assert_eq!((output.min_seq, output.max_seq, output.rows), (input.min_seq, input.max_seq, input.rows));
    let after = store.events_of(std::slice::from_ref(&output));
    assert_eq!(
        after.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>(),
        before.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>()
    );
    let meta = read_meta(&output);
    assert_eq!(meta.row_groups, 1, "written in the rewriter's row groups");
    assert_eq!(meta.lineage.unwrap().inputs, [input.id.to_string()]);
}

#[test]
fn a_failed_write_after_spilling_leaves_no_output_intent_or_spill_file() {
    let store = row_segments(3, 200);
    let inputs = store.live(Format::Rows);
    let action = store.action(RewriteKind::Reencode, &inputs);
    let faulty =
        FaultyFs::new(Arc::new(OsFs), vec![FsFault::new(FsOp::Write, FsFaultKind::Enospc).on_paths(".parquet")]);
    // On encoding threads: a writer dropped half way stops them.
    let rewriter = Rewriter::new(store.ctx("").with_fs(Arc::new(faulty)), Default::default())
        .keep_duplicates_for(60_000)
        .with_stream_limits(tiny())
        .with_encode_threads(2);
    assert!(rewriter.execute(&action).is_err());
    assert_eq!(store.parquet_files(), 0);
    assert_eq!(store.spill_files(), 0);
    assert!(store.catalog.intents().unwrap().is_empty());
    assert_eq!(store.live(Format::Rows).len(), 3, "the inputs stay in service");
    // Then the same rewrite goes through.
    let events = store.events_of(&inputs);
    assert!(check_rewrite(&store, &store.rewriter(Some(tiny())), &action, events) > 0);
}

#[test]
fn inputs_that_do_not_fit_two_at_a_time_are_refused_before_anything_is_written() {
    let store = row_segments(2, 100);
    for input in store.live(Format::Rows) {
        store.rewriter(None).execute(&store.action(RewriteKind::Reencode, &[input])).unwrap();
    }
    let parquet = store.live(Format::Parquet);
    let action = store.action(RewriteKind::Compact, &parquet);
    let limits = StreamLimits { sort_bytes: 16 << 10, merge_bytes: 8 << 20 };
    let e = store.rewriter(Some(limits)).execute(&action).unwrap_err();
    assert!(matches!(e, StoreError::RewriteTooLarge(_)) && e.to_string().contains("rewrite.max_memory_bytes"), "{e}");
    assert_eq!(store.live(Format::Parquet).len(), 2);
    assert!(store.catalog.intents().unwrap().is_empty());
    // A budget too small for a re-encode's sort buffer is refused by name, derived from rewrite.max_memory_bytes.
    let store = row_segments(1, 50);
    let action = store.action(RewriteKind::Reencode, &store.live(Format::Rows));
    let e = Rewriter::new(store.ctx(""), Default::default()).with_max_memory(4 << 20).execute(&action).unwrap_err();
    assert!(matches!(e, StoreError::RewriteTooLarge(_)), "{e}");
    assert_eq!(store.parquet_files(), 0);
}

/// `rewrite.threads`: outputs and spill files encoded on several threads hold exactly what the in-memory dedup keeps
/// and removes (the bytes are those of one thread: `tierd_codecs`'s `columnar::tests::parallel`), and a
/// recompression on them gives back the same events in the same order.
#[test]
fn rewrites_encoding_on_several_threads_equal_the_in_memory_dedup() {
    let store = row_segments(4, 300);
    let inputs = store.live(Format::Rows);
    let events = store.events_of(&inputs);
    let action = store.action(RewriteKind::Reencode, &inputs);
    let spills = check_rewrite(&store, &store.rewriter(Some(tiny())).with_encode_threads(3), &action, events);
    assert!(spills > 0, "the spill files were written on threads too");
    let input = store.live(Format::Parquet).remove(0);
    let before = store.events_of(std::slice::from_ref(&input));
    let mut action = store.action(RewriteKind::Recompress, std::slice::from_ref(&input));
    action.output_codec = "zstd-19".into();
    let spec = CodecSpec { row_group_rows: 97, ..Default::default() };
    let outcome = Rewriter::new(store.ctx(""), spec).with_encode_threads(2).execute(&action).unwrap();
    let output = store.catalog.snapshot().get(&outcome.outputs[0]).unwrap().clone();
    let after = store.events_of(std::slice::from_ref(&output));
    let debug = |events: &[StoredEvent]| events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
    assert_eq!(debug(&after), debug(&before));
    assert_eq!(output.codec, Codec::Zstd(19));
}

/// The memory model counts the batches the encoder's threads hold, as many as the encoder keeps.
#[test]
fn the_memory_model_counts_the_encoders_batches() {
    assert_eq!(tierd_policies::memory::PIPELINE_BATCHES, tierd_codecs::columnar::PIPELINE_BATCHES as u64);
}
