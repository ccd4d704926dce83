use std::sync::Arc;

use super::*;

fn faulty(faults: Vec<FsFault>) -> FaultyFs {
    FaultyFs::new(Arc::new(OsFs), faults)
}

#[test]
fn a_new_file_is_written_once_and_read_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/seg.parquet");
    let fp = Failpoints::none();
    let back = write_new_verified(&OsFs, &fp, &path, b"hello segment", "move.write").unwrap();
    assert_eq!(back, b"hello segment");
    assert_eq!(std::fs::read(&path).unwrap(), b"hello segment");
    // Create-only: the same path is never written twice.
    let again = write_new_verified(&OsFs, &fp, &path, b"other", "move.write").unwrap_err();
    assert!(
        matches!(&again, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
        "{again}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"hello segment");
}

#[test]
fn every_durable_step_is_taken_and_its_failure_is_reported() {
    // Each fault fails one step of a create; the write must report it, whatever the step.
    for op in [FsOp::CreateNew, FsOp::Write, FsOp::SyncAll, FsOp::SyncDir, FsOp::Read] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.rows");
        let fs = faulty(vec![FsFault::new(op, FsFaultKind::Eio)]);
        let err = write_new_verified(&fs, &Failpoints::none(), &path, b"0123456789", "rewrite.write").unwrap_err();
        assert!(matches!(&err, StoreError::Io { source, .. } if source.raw_os_error().is_none()), "{op:?}: {err}");
        assert!(err.to_string().contains("injected EIO"), "{op:?}: {err}");
        assert_eq!(fs.faults()[0].seen(), 1, "{op:?} was reached once");
    }
}

#[test]
fn a_short_write_is_caught_by_the_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg.parquet");
    let fs = faulty(vec![FsFault::new(FsOp::Write, FsFaultKind::ShortWrite)]);
    let err = write_new_verified(&fs, &Failpoints::none(), &path, b"0123456789", "move.write").unwrap_err();
    assert!(err.to_string().contains("5 bytes on disk after writing 10"), "{err}");
}

#[test]
fn a_full_disk_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let fs = faulty(vec![FsFault::new(FsOp::Write, FsFaultKind::Enospc)]);
    let err = create_new_synced(&fs, &dir.path().join("x"), b"abc").unwrap_err();
    let StoreError::Io { source, .. } = &err else { panic!("{err}") };
    assert!(is_out_of_space(source), "{err}");
    assert!(!is_out_of_space(&io::Error::other("eio")));
}

#[test]
fn faults_fire_after_skips_for_their_count_and_only_on_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let fs = faulty(vec![FsFault::new(FsOp::CreateNew, FsFaultKind::Eio).on_paths("bad").after(1).times(2)]);
    let p = |name: &str| dir.path().join(name);
    assert!(create_new_synced(&fs, &p("good-1"), b"x").is_ok(), "other paths pass");
    assert!(create_new_synced(&fs, &p("bad-1"), b"x").is_ok(), "the first matching call is skipped");
    assert!(create_new_synced(&fs, &p("bad-2"), b"x").is_err());
    assert!(create_new_synced(&fs, &p("bad-3"), b"x").is_err());
    assert!(create_new_synced(&fs, &p("bad-4"), b"x").is_ok(), "two failures, then it passes");
    assert_eq!(fs.faults()[0].seen(), 4);
}

#[test]
fn removal_and_rename_tolerate_what_an_earlier_attempt_did() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("hot/p/a.rows");
    create_new_synced(&OsFs, &a, b"a").unwrap();
    let to = dir.path().join("trash/1/hot/p/a.rows");
    assert!(rename_synced(&OsFs, &a, &to).unwrap());
    assert!(!rename_synced(&OsFs, &a, &to).unwrap(), "already moved");
    assert_eq!(std::fs::read(&to).unwrap(), b"a");
    assert!(remove_synced(&OsFs, &to).unwrap());
    assert!(!remove_synced(&OsFs, &to).unwrap(), "already gone");
    // A failed directory fsync is an error: the removal may not survive a crash.
    create_new_synced(&OsFs, &a, b"a").unwrap();
    let fs = faulty(vec![FsFault::new(FsOp::SyncDir, FsFaultKind::Eio)]);
    assert!(remove_synced(&fs, &a).is_err());
}

#[test]
fn truncation_cuts_to_the_committed_length() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("seg.rows");
    create_new_synced(&OsFs, &a, b"committed+torn tail").unwrap();
    truncate_synced(&OsFs, &a, 9).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), b"committed");
}

/// A power cut at any step of a rename between directories leaves the file under one of its names at least. The
/// source's directory used to be synced first: a cut between the two syncs lost the file (a trashed copy, a
/// quarantined file) under both names.
#[test]
fn a_power_cut_during_a_rename_never_loses_the_file() {
    // The steps of rename_synced between existing directories: the rename, then one fsync per directory.
    for k in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("hot/a.rows"), dir.path().join("trash/1/a.rows"));
        let fs = PowerLossFs::new();
        create_new_synced(&fs, &from, b"copy").unwrap();
        ensure_dir(&fs, to.parent().unwrap()).unwrap();
        fs.cut_after(fs.ops() + k);
        let done = rename_synced(&fs, &from, &to);
        assert_eq!(done.is_ok(), k == 3, "step {k}: {done:?}");
        fs.crash().unwrap();
        let names: Vec<_> = [&from, &to].into_iter().filter(|p| std::fs::read(p).is_ok_and(|b| b == b"copy")).collect();
        assert!(!names.is_empty(), "power cut after step {k}: the file is gone under both names");
    }
}

/// A directory whose fsync into its parent failed once (a transient EIO) is synced again by the next call that
/// needs it, not trusted because it exists: a file later made durable in it survives a power loss.
#[test]
fn a_directory_whose_parent_sync_failed_is_synced_by_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let power = PowerLossFs::new();
    let fs = FaultyFs::new(Arc::new(power.clone()), vec![FsFault::new(FsOp::SyncDir, FsFaultKind::Eio).times(1)]);
    let file = dir.path().join("hot/p/a.rows");
    assert!(create_new_synced(&fs, &file, b"a").is_err(), "the first directory sync fails");
    assert!(dir.path().join("hot").is_dir(), "the directory was made before its sync failed");
    create_new_synced(&fs, &file, b"a").unwrap();
    power.crash().unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"a", "a durable file went with a directory never synced");
}
