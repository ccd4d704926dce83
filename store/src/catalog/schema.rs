//! The catalog's on-disk schema: its version, the trees, the JSON encoding of values, and the migrations that bring
//! an older catalog up to date in one transaction when it is opened.
//!
//! Versions: 1, one `tier` + `location` per segment; 2, `locations` (a copy per tier) and `dropped` copies, with
//! rewrite intents (`intents`, by output id) and move intents (`moves`, by `tier:path`) in two trees; 3, one kind of
//! intent for every copy being written, in `intents` by `tier:path`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::intents::{Intent, IntentKind};
use super::record::SegmentMeta;
use crate::error::{Result, StoreError};
use crate::layout::{Location, SegmentId};

pub(super) const SCHEMA_VERSION: u32 = 3;
pub(super) const KEY_GENERATION: &[u8] = b"generation";
pub(super) const KEY_SCHEMA: &[u8] = b"schema_version";

/// The trees of an open catalog.
pub(super) struct Trees {
    pub meta: sled::Tree,
    pub segments: sled::Tree,
    pub leases: sled::Tree,
    pub intents: sled::Tree,
}

pub(super) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| StoreError::CatalogEncode { what, source })
}

pub(super) fn decode<T: DeserializeOwned>(what: &'static str, key: &[u8], value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|source| StoreError::CatalogDecode {
        what,
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

pub(super) fn sled_err(op: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |source| StoreError::Catalog { op, source }
}

/// A failed transaction: sled's error. Transactions here never abort on purpose.
pub(super) fn transaction_err(op: &'static str) -> impl Fn(TransactionError<()>) -> StoreError {
    move |e| match e {
        TransactionError::Storage(source) => StoreError::Catalog { op, source },
        TransactionError::Abort(()) => StoreError::Catalog { op, source: sled::Error::Unsupported("aborted".into()) },
    }
}

fn u32_value(key: &[u8], v: &[u8]) -> Result<u32> {
    let bytes: [u8; 4] = v.try_into().map_err(|_| bad_value(key, v))?;
    Ok(u32::from_be_bytes(bytes))
}

pub(super) fn u64_value(key: &[u8], v: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| bad_value(key, v))?;
    Ok(u64::from_be_bytes(bytes))
}

fn bad_value(key: &[u8], v: &[u8]) -> StoreError {
    StoreError::CatalogRecord {
        key: String::from_utf8_lossy(key).into_owned(),
        message: format!("expected a big-endian integer, found {} bytes", v.len()),
    }
}

/// Opens the trees of `db`, creating a new catalog at the current version or migrating an older one.
pub(super) fn open(db: &sled::Db) -> Result<Trees> {
    let tree = |name: &str| db.open_tree(name).map_err(sled_err("open a tree"));
    let trees =
        Trees { meta: tree("meta")?, segments: tree("segments")?, leases: tree("leases")?, intents: tree("intents")? };
    match trees.meta.get(KEY_SCHEMA).map_err(sled_err("read the schema version"))? {
        None => {
            trees
                .meta
                .insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                .map_err(sled_err("write the schema version"))?;
        }
        Some(v) => {
            let mut version = u32_value(KEY_SCHEMA, &v)?;
            if version == 1 {
                migrate_v1(&trees)?;
                version = 2;
            }
            if version == 2 {
                migrate_v2(db, &trees)?;
                version = 3;
            }
            if version != SCHEMA_VERSION {
                return Err(StoreError::CatalogSchema { found: version, supported: SCHEMA_VERSION });
            }
        }
    }
    db.flush().map_err(sled_err("flush"))?;
    Ok(trees)
}

/// Schema 1 -> 2, in one transaction: `{"tier": T, "location": P}` becomes `{"locations": [{"tier": T, "path": P}]}`.
fn migrate_v1(trees: &Trees) -> Result<()> {
    let mut rewritten = Vec::new();
    for kv in trees.segments.iter() {
        let (k, v) = kv.map_err(sled_err("read segments"))?;
        let mut record: serde_json::Value = decode("v1 segment", &k, &v)?;
        let invalid = |message: &str| StoreError::CatalogRecord {
            key: String::from_utf8_lossy(&k).into_owned(),
            message: format!("schema 1 segment {message}"),
        };
        let obj = record.as_object_mut().ok_or_else(|| invalid("is not an object"))?;
        let (Some(tier), Some(path)) = (obj.remove("tier"), obj.remove("location")) else {
            return Err(invalid("has no tier and location"));
        };
        obj.insert("locations".into(), serde_json::json!([{"tier": tier, "path": path}]));
        let migrated = encode("migrated segment", &record)?;
        decode::<SegmentMeta>("migrated segment", &k, &migrated)?;
        rewritten.push((k, migrated));
    }
    (&trees.meta, &trees.segments)
        .transaction(|(meta, segs)| {
            for (k, v) in &rewritten {
                segs.insert(k.as_ref(), v.as_slice())?;
            }
            meta.insert(KEY_SCHEMA, &2u32.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(transaction_err("migrate schema 1 -> 2"))?;
    tracing::info!(segments = rewritten.len(), "catalog migrated from schema 1 to 2");
    Ok(())
}

/// A rewrite intent of schema 2.
#[derive(serde::Deserialize)]
struct RewriteIntentV2 {
    output: SegmentId,
    location: String,
    inputs: Vec<SegmentId>,
    started_at_ms: i64,
}

/// A move intent of schema 2.
#[derive(serde::Deserialize)]
struct MoveIntentV2 {
    segment: SegmentId,
    location: Location,
    started_at_ms: i64,
}

/// Schema 2 -> 3, in one transaction: rewrite intents (by output id) and move intents (the `moves` tree) become
/// intents by `tier:path` in `intents`; the emptied `moves` tree is dropped after.
fn migrate_v2(db: &sled::Db, trees: &Trees) -> Result<()> {
    let moves = db.open_tree("moves").map_err(sled_err("open a tree"))?;
    let mut old_keys = Vec::new();
    let mut converted = Vec::new();
    for kv in trees.intents.iter() {
        let (k, v) = kv.map_err(sled_err("read intents"))?;
        let old: RewriteIntentV2 = decode("schema 2 rewrite intent", &k, &v)?;
        let kind = IntentKind::Rewrite { inputs: old.inputs };
        converted.push(Intent::new(old.output, Location::hot(old.location), kind, old.started_at_ms));
        old_keys.push(k);
    }
    let mut move_keys = Vec::new();
    for kv in moves.iter() {
        let (k, v) = kv.map_err(sled_err("read move intents"))?;
        let old: MoveIntentV2 = decode("schema 2 move intent", &k, &v)?;
        converted.push(Intent::new(old.segment, old.location, IntentKind::Move, old.started_at_ms));
        move_keys.push(k);
    }
    let encoded =
        converted.iter().map(|i| Ok((Intent::key(&i.location), encode("intent", i)?))).collect::<Result<Vec<_>>>()?;
    (&trees.meta, &trees.intents, &moves)
        .transaction(|(meta, intents, moves)| {
            for k in &old_keys {
                intents.remove(k.as_ref())?;
            }
            for k in &move_keys {
                moves.remove(k.as_ref())?;
            }
            for (k, v) in &encoded {
                intents.insert(k.as_bytes(), v.as_slice())?;
            }
            meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(transaction_err("migrate schema 2 -> 3"))?;
    db.flush().map_err(sled_err("flush"))?;
    db.drop_tree("moves").map_err(sled_err("drop the moves tree"))?;
    tracing::info!(intents = converted.len(), "catalog migrated from schema 2 to 3");
    Ok(())
}
