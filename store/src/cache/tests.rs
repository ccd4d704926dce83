//! The cache against a real directory: verified reads, the bound on disk, rebuild after a restart.

use super::*;

fn block(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| n.wrapping_add(i as u8)).collect()
}

fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for sub in fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for f in fs::read_dir(&sub).unwrap() {
                let f = f.unwrap();
                out.push((f.path(), f.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

fn open(dir: &Path, max_bytes: u64) -> BlockCache {
    BlockCache::open(dir, &CacheConfig { max_bytes, ..Default::default() }).unwrap()
}

#[test]
fn a_block_reads_back_only_with_its_length_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 20);
    let key = BlockKey::new("segments/p/2026-01-01/A.B.parquet", 3);
    let data = block(1, 1000);
    let crc = crc32c::crc32c(&data);
    assert_eq!(cache.get(&key, 1000, crc), None);
    cache.put(&key, &data);
    assert_eq!(cache.get(&key, 1000, crc).as_deref(), Some(&data[..]));
    // Asked with another checksum (the catalog's): the file does not verify, so it is dropped.
    assert_eq!(cache.get(&key, 1000, crc ^ 1), None);
    assert_eq!(cache.get(&key, 1000, crc), None, "dropped");
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.corrupt, s.fill_bytes, s.blocks, s.bytes), (1, 3, 1, 1000, 0, 0));
    assert!(files(dir.path()).is_empty());
}

#[test]
fn damaged_files_are_misses_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 20);
    for (i, damage) in ["flip", "truncate", "remove"].into_iter().enumerate() {
        let key = BlockKey::new("k", i as u64);
        let data = block(i as u8, 4096);
        cache.put(&key, &data);
        let path = cache.path_of(&key);
        match damage {
            "flip" => {
                let mut d = data.clone();
                d[100] ^= 0x40;
                fs::write(&path, d).unwrap();
            }
            "truncate" => fs::write(&path, &data[..10]).unwrap(),
            _ => fs::remove_file(&path).unwrap(),
        }
        assert_eq!(cache.get(&key, 4096, crc32c::crc32c(&data)), None, "{damage}");
        assert!(!path.exists(), "{damage}");
        // Filled again, it reads back.
        cache.put(&key, &data);
        assert_eq!(cache.get(&key, 4096, crc32c::crc32c(&data)).as_deref(), Some(&data[..]), "{damage}");
    }
    assert_eq!(cache.stats().corrupt, 2, "a missing file is a plain miss");
}

#[test]
fn the_bound_holds_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 10_000);
    for i in 0..100u64 {
        let data = block(i as u8, 700 + (i as usize * 37) % 900);
        cache.put(&BlockKey::new(&format!("obj{}", i % 13), i), &data);
        // Some blocks are read again: those are the ones that stay.
        if i % 3 == 0 {
            assert!(cache
                .get(&BlockKey::new(&format!("obj{}", i % 13), i), data.len() as u64, crc32c::crc32c(&data))
                .is_some());
        }
        let on_disk: u64 = files(dir.path()).iter().map(|(_, len)| len).sum();
        let s = cache.stats();
        assert!(on_disk <= 10_000, "{on_disk} bytes on disk");
        assert_eq!(on_disk, s.bytes);
        assert_eq!(files(dir.path()).len(), s.blocks);
    }
    let s = cache.stats();
    assert!(s.evictions > 0);
    assert_eq!(s.hits, 34);
    // A block bigger than the bound is not cached.
    cache.put(&BlockKey::new("big", 0), &block(0, 10_001));
    assert!(cache.get(&BlockKey::new("big", 0), 10_001, 0).is_none());
}

#[test]
fn a_restart_rebuilds_the_index_from_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<(BlockKey, Vec<u8>)> = (0..6u64).map(|i| (BlockKey::new("obj", i), block(i as u8, 1000))).collect();
    {
        let cache = open(dir.path(), 1 << 20);
        for (k, d) in &blocks {
            cache.put(k, d);
        }
    }
    // A crash mid-fill leaves a temp file; stray files are not the cache's.
    fs::write(dir.path().join("tmp").join("123-0"), b"partial").unwrap();
    fs::write(dir.path().join("stray.txt"), b"?").unwrap();
    fs::create_dir_all(dir.path().join("ab")).unwrap();
    fs::write(dir.path().join("ab").join("not-a-block"), b"?").unwrap();

    let cache = open(dir.path(), 1 << 20);
    assert_eq!((cache.stats().blocks, cache.stats().bytes), (6, 6000));
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(!dir.path().join("stray.txt").exists());
    assert!(!dir.path().join("ab").join("not-a-block").exists());
    for (k, d) in &blocks {
        assert_eq!(cache.get(k, 1000, crc32c::crc32c(d)).as_deref(), Some(&d[..]));
    }
    drop(cache);

    // A smaller bound evicts at once; 0 disables the cache and removes its directory.
    let cache = open(dir.path(), 2500);
    assert_eq!((cache.stats().blocks, cache.stats().bytes), (2, 2000));
    assert_eq!(files(dir.path()).len(), 2);
    drop(cache);
    let cache = open(dir.path(), 0);
    assert!(!cache.is_enabled());
    assert!(!dir.path().exists());
    cache.put(&blocks[0].0, &blocks[0].1);
    assert!(cache.get(&blocks[0].0, 1000, crc32c::crc32c(&blocks[0].1)).is_none());
}

#[test]
fn block_file_names_round_trip() {
    let k = BlockKey::new("segments/p/x.parquet", 42);
    assert_eq!(BlockKey::parse(&k.file_name()), Some(k));
    for bad in [
        "",
        "x.1",
        "0123.1",
        &format!("{:032x}.-1", 5u128),
        &format!("{:032X}.1", u128::MAX),
        &format!("{:032x}.01", 5u128),
    ] {
        assert_eq!(BlockKey::parse(bad), None, "{bad}");
    }
}

#[test]
fn an_objects_blocks_are_purged_from_index_and_disk_and_unknown_objects_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 20);
    let (k1, k2) = ("segments/p/2026-01-01/A.B.parquet", "segments/p/2026-01-01/C.D.parquet");
    for (key, b) in [(k1, 0), (k1, 1), (k2, 0)] {
        cache.put(&BlockKey::new(key, b), &block(b as u8, 100));
    }
    assert_eq!((cache.blocks_on_disk(k1), cache.blocks_on_disk(k2)), (2, 1));
    assert_eq!(cache.purge_object(k1), 2);
    assert_eq!((cache.blocks_on_disk(k1), cache.blocks_on_disk(k2)), (0, 1));
    assert_eq!(cache.stats().blocks, 1, "the index forgot them too");
    let data = block(0, 100);
    assert_eq!(cache.get(&BlockKey::new(k1, 0), 100, crc32c::crc32c(&data)), None);
    // A block file the index does not know (a crash, a failed removal) is found on disk all the same.
    let stray = cache.path_of(&BlockKey::new(k1, 7));
    fs::write(&stray, b"x").unwrap();
    assert_eq!(cache.blocks_on_disk(k1), 1);
    // Reconciliation: every block of an object not kept goes; the kept object's stay.
    assert_eq!(cache.retain_objects([k2]), 1);
    assert_eq!(files(dir.path()).iter().filter(|(p, _)| !p.starts_with(dir.path().join("tmp"))).count(), 1);
    assert_eq!(cache.retain_objects(std::iter::empty()), 1);
    assert_eq!(cache.blocks_on_disk(k2), 0);
    assert_eq!(cache.stats().blocks, 0);
}

/// A fill that would leave less than the disk's background reserve free is skipped and counted; the cache keeps
/// working (a later fill with room goes in) once the reserve allows.
#[test]
fn fills_that_would_eat_into_the_disk_reserve_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 20);
    let free = crate::space::free_bytes(dir.path()).unwrap();
    let (k, d) = (BlockKey::new("obj", 0), block(7, 1000));
    cache.set_disk_reserve(free.saturating_mul(2));
    cache.put(&k, &d);
    assert_eq!(cache.stats().skipped_full, 1);
    assert_eq!((cache.stats().blocks, cache.stats().fill_bytes), (0, 0), "nothing written");
    assert!(files(dir.path()).is_empty());
    assert!(cache.get(&k, 1000, crc32c::crc32c(&d)).is_none(), "a miss: the read goes to the object store");
    // Space is back (the reserve now fits): the next fill goes in.
    cache.set_disk_reserve(1);
    cache.put(&k, &d);
    assert_eq!((cache.stats().skipped_full, cache.stats().blocks), (1, 1));
    assert_eq!(cache.get(&k, 1000, crc32c::crc32c(&d)).as_deref(), Some(&d[..]));
}
