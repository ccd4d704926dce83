use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::durable::{create_new_synced, remove_synced, rename_synced};

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[test]
fn a_write_without_sync_is_gone_after_a_crash_and_a_synced_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::new();
    let a = dir.path().join("hot/p/a.rows");
    create_new_synced(&fs, &a, b"header").unwrap();
    let f = fs.open_rw(&a).unwrap();
    f.write_all_at(b"+frame1", 6).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"+frame2", 13).unwrap();
    f.set_len(100).unwrap();
    assert_eq!(read(&a).unwrap().len(), 100, "the process sees its writes");
    let report = fs.crash().unwrap();
    assert_eq!(read(&a).unwrap(), b"header+frame1");
    assert_eq!(report.restored, vec![a.clone()]);
    // The handle died with the machine.
    let err = f.write_all_at(b"x", 0).unwrap_err();
    assert!(err.to_string().contains("opened before a crash"), "{err}");
    assert_eq!(read(&a).unwrap(), b"header+frame1");
}

#[test]
fn a_created_file_without_a_directory_sync_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::new();
    let a = dir.path().join("a");
    let f = fs.create_new(&a).unwrap();
    f.write_all_at(b"data", 0).unwrap();
    f.sync_all().unwrap();
    let report = fs.crash().unwrap();
    assert_eq!(read(&a), None);
    assert_eq!(report.removed, vec![a.clone()]);
    // With the directory synced, it stays, holding what was synced of it.
    let f = fs.create_new(&a).unwrap();
    f.write_all_at(b"data", 0).unwrap();
    fs.sync_dir(dir.path()).unwrap();
    fs.crash().unwrap();
    assert_eq!(read(&a).unwrap(), b"", "named, but its data was never synced");
    remove_synced(&fs, &a).unwrap();
    create_new_synced(&fs, &a, b"data").unwrap();
    fs.crash().unwrap();
    assert_eq!(read(&a).unwrap(), b"data");
}

#[test]
fn a_directory_not_synced_into_its_parent_takes_its_files_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::new();
    let sub = dir.path().join("hot/p");
    fs.create_dir_all(&sub).unwrap();
    let a = sub.join("a");
    let f = fs.create_new(&a).unwrap();
    f.write_all_at(b"data", 0).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(&sub).unwrap();
    fs.crash().unwrap();
    assert!(!dir.path().join("hot").exists(), "hot/ was never synced into its parent");
    // `ensure_dir` syncs every directory it makes.
    create_new_synced(&fs, &a, b"data").unwrap();
    fs.crash().unwrap();
    assert_eq!(read(&a).unwrap(), b"data");
}

#[test]
fn renames_and_removals_without_directory_syncs_are_undone() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::new();
    let a = dir.path().join("hot/a");
    let b = dir.path().join("trash/1/a");
    create_new_synced(&fs, &a, b"a").unwrap();
    crate::durable::ensure_dir(&fs, b.parent().unwrap()).unwrap();
    fs.rename(&a, &b).unwrap();
    fs.crash().unwrap();
    assert_eq!((read(&a), read(&b)), (Some(b"a".to_vec()), None), "rename undone");
    // Only the destination's directory synced: the file is under both names.
    fs.rename(&a, &b).unwrap();
    fs.sync_dir(b.parent().unwrap()).unwrap();
    fs.crash().unwrap();
    assert_eq!((read(&a), read(&b)), (Some(b"a".to_vec()), Some(b"a".to_vec())));
    std::fs::remove_file(&b).unwrap(); // (the model adopts paths at first use: b is followed already)
    let fs = PowerLossFs::new();
    assert!(rename_synced(&fs, &a, &b).unwrap());
    fs.crash().unwrap();
    assert_eq!((read(&a), read(&b)), (None, Some(b"a".to_vec())), "both directories synced");
    // A removal is undone without the directory sync, with the contents the file had.
    fs.remove_file(&b).unwrap();
    fs.crash().unwrap();
    assert_eq!(read(&b).unwrap(), b"a");
    assert!(remove_synced(&fs, &b).unwrap());
    fs.crash().unwrap();
    assert_eq!(read(&b), None);
    // A whole directory removed and not synced comes back.
    create_new_synced(&fs, &dir.path().join("trash/2/x"), b"x").unwrap();
    fs.remove_dir_all(&dir.path().join("trash/2")).unwrap();
    fs.crash().unwrap();
    assert_eq!(read(&dir.path().join("trash/2/x")).unwrap(), b"x");
}

#[test]
fn the_power_goes_off_after_the_kth_operation_and_the_catalog_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::new();
    let cat = dir.path().join("catalog");
    std::fs::create_dir_all(&cat).unwrap();
    std::fs::write(cat.join("db"), b"v1").unwrap();
    fs.watch_catalog(&cat);
    // create_new_synced of a file in an existing directory: create, write, sync_all, sync_dir.
    fs.cut_after(3);
    let err = create_new_synced(&fs, &dir.path().join("a"), b"a").unwrap_err();
    assert!(err.to_string().contains("power is off"), "{err}");
    assert!(fs.is_off());
    assert_eq!(fs.ops(), 3);
    // The catalog's flush fails too, and what it wrote after the cut is not kept.
    std::fs::write(cat.join("db"), b"v2 (unflushed)").unwrap();
    assert!(fs.external_step(|| Ok(())).is_err());
    let report = fs.crash().unwrap();
    assert!(report.catalog_restored);
    assert_eq!(read(&cat.join("db")).unwrap(), b"v1");
    assert_eq!(read(&dir.path().join("a")), None, "synced, but its name never was");
    // After the reboot the power is on, and a flush is a counted step.
    fs.external_step(|| std::fs::write(cat.join("db"), b"v3")).unwrap();
    assert_eq!(fs.ops(), 1);
    fs.crash().unwrap();
    assert_eq!(read(&cat.join("db")).unwrap(), b"v3", "copied when the crash cut the power");
}

#[test]
fn torn_mode_keeps_a_prefix_of_the_unsynced_writes() {
    let mut kept = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let fs = PowerLossFs::new().with_torn_writes(seed);
        let a = dir.path().join("a");
        create_new_synced(&fs, &a, b"0123").unwrap();
        let f = fs.open_rw(&a).unwrap();
        f.write_all_at(b"4567", 4).unwrap();
        f.write_all_at(b"89", 8).unwrap();
        fs.crash().unwrap();
        let after = read(&a).unwrap();
        assert!(b"0123456789".starts_with(&after) && after.len() >= 4, "seed {seed}: {after:?}");
        kept.insert(after.len());
    }
    assert!(kept.contains(&4) && kept.contains(&10) && kept.len() > 3, "{kept:?}");
}

// The property test's own model, flat and independent of the implementation: two directories, a few names, files
// as inodes with current and synced bytes.

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Vec<u8>),
    Write(usize, u8, Vec<u8>),
    Sync(usize),
    SyncDir(usize),
    Rename(usize, usize),
    Remove(usize),
    Crash,
}

const NAMES: usize = 6; // names 0..3 in directory 0, 3..6 in directory 1

fn op() -> impl Strategy<Value = Op> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..6);
    prop_oneof![
        (0..NAMES, bytes.clone()).prop_map(|(n, b)| Op::Create(n, b)),
        (0..NAMES, 0u8..8, bytes).prop_map(|(n, o, b)| Op::Write(n, o, b)),
        (0..NAMES).prop_map(Op::Sync),
        (0..2usize).prop_map(Op::SyncDir),
        (0..NAMES, 0..NAMES).prop_map(|(a, b)| Op::Rename(a, b)),
        (0..NAMES).prop_map(Op::Remove),
        Just(Op::Crash),
    ]
}

#[derive(Default)]
struct Model {
    inodes: Vec<(Vec<u8>, Vec<u8>)>, // (current, synced)
    names: BTreeMap<usize, usize>,   // name -> inode, as the process sees it
    durable: BTreeMap<usize, usize>, // name -> inode, as the last sync of its directory saw it
}

impl Model {
    fn crash(&mut self) {
        self.names = self.durable.clone();
        for (current, synced) in &mut self.inodes {
            *current = synced.clone();
        }
        // Names sharing an inode after a half-synced rename are separate files after the reboot.
        let mut inodes = Vec::new();
        for inode in self.names.values_mut() {
            inodes.push((self.inodes[*inode].1.clone(), self.inodes[*inode].1.clone()));
            *inode = inodes.len() - 1;
        }
        self.inodes = inodes;
        self.durable = self.names.clone();
    }

    fn view(&self) -> BTreeMap<usize, Vec<u8>> {
        self.names.iter().map(|(n, i)| (*n, self.inodes[*i].0.clone())).collect()
    }
}

fn disk(root: &Path) -> BTreeMap<usize, Vec<u8>> {
    (0..NAMES).filter_map(|n| read(&name(root, n)).map(|b| (n, b))).collect()
}

fn name(root: &Path, n: usize) -> PathBuf {
    root.join(format!("d{}", n / 3)).join(format!("f{}", n % 3))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// After any sequence of operations and crashes, the real directory holds what the flat model says: the process's
    /// view while the power is on, the durable view after each crash.
    #[test]
    fn the_directory_after_a_crash_is_what_was_made_durable(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..2 {
            std::fs::create_dir_all(root.join(format!("d{d}"))).unwrap();
        }
        let fs = PowerLossFs::new();
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Create(n, b) => {
                    if let Ok(f) = fs.create_new(&name(root, n)) {
                        f.write_all_at(&b, 0).unwrap();
                        m.inodes.push((b, Vec::new()));
                        m.names.insert(n, m.inodes.len() - 1);
                    } else {
                        prop_assert!(m.names.contains_key(&n));
                    }
                }
                Op::Write(n, off, b) => {
                    if let Ok(f) = fs.open_rw(&name(root, n)) {
                        f.write_all_at(&b, u64::from(off)).unwrap();
                        let cur = &mut m.inodes[m.names[&n]].0;
                        let end = off as usize + b.len();
                        if cur.len() < end && !b.is_empty() { cur.resize(end, 0); }
                        if !b.is_empty() { cur[off as usize..end].copy_from_slice(&b); }
                    }
                }
                Op::Sync(n) => {
                    if let Ok(f) = fs.open_rw(&name(root, n)) {
                        f.sync_all().unwrap();
                        let inode = &mut m.inodes[m.names[&n]];
                        inode.1 = inode.0.clone();
                    }
                }
                Op::SyncDir(d) => {
                    fs.sync_dir(&root.join(format!("d{d}"))).unwrap();
                    for n in d * 3..d * 3 + 3 {
                        match m.names.get(&n) {
                            Some(i) => m.durable.insert(n, *i),
                            None => m.durable.remove(&n),
                        };
                    }
                }
                Op::Rename(a, b) => {
                    if fs.rename(&name(root, a), &name(root, b)).is_ok() && a != b {
                        let i = m.names.remove(&a).unwrap();
                        m.names.insert(b, i);
                    }
                }
                Op::Remove(n) => {
                    if fs.remove_file(&name(root, n)).is_ok() {
                        m.names.remove(&n);
                    }
                }
                Op::Crash => {
                    fs.crash().unwrap();
                    m.crash();
                }
            }
            prop_assert_eq!(disk(root), m.view());
        }
        fs.crash().unwrap();
        m.crash();
        prop_assert_eq!(disk(root), m.view());
    }
}
