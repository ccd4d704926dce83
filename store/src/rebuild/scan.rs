//! What one file says about itself: its name (`hot/<project>/<id>[.<nonce>].<ext>`,
//! `segments/<project>/<day>/<id>.<nonce>.parquet`) and its bytes (a row segment's header and checksummed frames,
//! a Parquet footer and every row decoded). A file that does not describe itself consistently is refused with the
//! reason; nothing here writes.

use tierd_codecs::columnar::{self, LineageRole};
use tierd_codecs::rows::{decode_frames, valid_prefix, SegmentHeader};
use tierd_codecs::StoredEvent;

use super::decide::FoundCopy;
use crate::catalog::{BlockChecksums, Codec, Format, Role};
use crate::layout::{format_day, Location, SegmentId, Tier, COLD_SEGMENTS_PREFIX};

/// Everything a catalog record needs that one file can tell.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub copy: FoundCopy,
    pub project: String,
    pub day: i32,
    pub format: Format,
    pub codec: Codec,
    pub rows: u64,
    pub time: (i64, i64),
    pub seqs: (u64, u64),
    pub role: Role,
    pub created_at_ms: i64,
    pub blocks: Option<BlockChecksums>,
    /// A Parquet file with no lineage in its footer (written before it was recorded).
    pub legacy: bool,
    /// A row segment's bytes past its last whole record (the file is cut there; the whole file is kept in
    /// quarantine first).
    pub torn_tail: u64,
}

/// The segment id, project and format a file's name gives, or why it is not a segment file's name.
pub fn parse_name(location: &Location) -> Result<(SegmentId, String, Format, Option<i32>), String> {
    let parts: Vec<&str> = location.path.split('/').collect();
    let (project, day, name) = match (location.tier, parts.as_slice()) {
        (Tier::Hot, ["hot", project, name]) => (*project, None, *name),
        (Tier::Cold, [prefix, project, day, name]) if *prefix == COLD_SEGMENTS_PREFIX => (*project, Some(*day), *name),
        _ => return Err("not where tierd puts segment files".into()),
    };
    let pieces: Vec<&str> = name.split('.').collect();
    let (id, ext) = match (location.tier, pieces.as_slice()) {
        (Tier::Hot, [id, ext]) | (Tier::Hot | Tier::Cold, [id, _, ext]) => (*id, *ext),
        _ => return Err(format!("{name:?} is not <segment id>[.<nonce>].<extension>")),
    };
    let id: SegmentId = id.parse().map_err(|e| format!("{e}"))?;
    let format = match ext {
        "rows" if location.tier == Tier::Hot => Format::Rows,
        "parquet" => Format::Parquet,
        other => return Err(format!("extension {other:?} is not a segment format of this tier")),
    };
    crate::layout::validate_project(project)?;
    let day = day.map(parse_day).transpose()?;
    Ok((id, project.to_string(), format, day))
}

/// `yyyy-mm-dd` back to days since 1970-01-01.
fn parse_day(text: &str) -> Result<i32, String> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| format!("day {text:?}: {e}"))?;
    let day = i32::try_from(date.signed_duration_since(chrono::NaiveDate::default()).num_days())
        .map_err(|_| format!("day {text:?} is out of range"))?;
    if format_day(day) != text {
        return Err(format!("day {text:?} is not in yyyy-mm-dd form"));
    }
    Ok(day)
}

/// Reads what the file at `location` holding `bytes` says about itself.
pub fn examine(location: &Location, bytes: &[u8]) -> Result<FileFacts, String> {
    let (id, project, format, day) = parse_name(location)?;
    let copy = |bytes: &[u8], inputs, erase_inputs| FoundCopy {
        id,
        location: location.clone(),
        bytes: bytes.len() as u64,
        checksum: crc32c::crc32c(bytes),
        inputs,
        erase_inputs,
    };
    let created_from_id = i64::try_from(id.0.timestamp_ms()).unwrap_or(0);
    match format {
        Format::Rows => {
            let (header, header_len) = SegmentHeader::decode(bytes).map_err(|e| format!("row segment header: {e}"))?;
            check_same("segment id", &header.segment_id, &id.to_string())?;
            check_same("project", &header.project, &project)?;
            let prefix = valid_prefix(&bytes[header_len..]);
            if prefix.rows == 0 {
                return Err("a row segment without one whole record (never committed)".into());
            }
            let end = header_len + prefix.len as usize;
            let events = decode_frames(&bytes[header_len..end], header_len as u64).map_err(|e| e.to_string())?;
            let kept = &bytes[..end];
            Ok(FileFacts {
                copy: copy(kept, None, false),
                project,
                day: header.day,
                format,
                codec: Codec::Lz4,
                rows: prefix.rows,
                time: prefix.time.map_or((0, 0), |t| (t.min_ms, t.max_ms)),
                seqs: seq_range(&events),
                role: Role::Data,
                created_at_ms: created_from_id,
                blocks: None,
                legacy: false,
                torn_tail: (bytes.len() - end) as u64,
            })
        }
        Format::Parquet => {
            let meta = columnar::read_meta(bytes).map_err(|e| format!("Parquet footer: {e}"))?;
            // Every page decoded: a file is only put in service whole.
            let (_, events) = columnar::decode(bytes).map_err(|e| format!("Parquet data: {e}"))?;
            if events.len() as u64 != meta.rows {
                return Err(format!("{} rows decoded, the footer says {}", events.len(), meta.rows));
            }
            check_same("project", &meta.info.project, &project)?;
            if let Some(day) = day {
                check_same("day", &format_day(meta.info.day), &format_day(day))?;
            }
            // A footer that names another segment and records no lineage is an older recompress output (it kept its
            // input's footer): the name is the segment's. With lineage the footer always names the file's segment.
            if meta.lineage.is_some() || meta.info.segment_id == id.to_string() {
                check_same("segment id", &meta.info.segment_id, &id.to_string())?;
            }
            let (inputs, erase, role, created_at_ms) = match &meta.lineage {
                None => (None, false, Role::Data, created_from_id),
                Some(l) => {
                    let inputs = l
                        .inputs
                        .iter()
                        .map(|i| i.parse::<SegmentId>().map_err(|e| format!("lineage input: {e}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let role = match &l.role {
                        LineageRole::Data => Role::Data,
                        LineageRole::Duplicates { of, keep_until_ms } => Role::Duplicates {
                            of: of.parse().map_err(|e| format!("lineage role: {e}"))?,
                            keep_until_ms: *keep_until_ms,
                        },
                    };
                    (Some(inputs), l.erase_inputs, role, l.created_at_ms)
                }
            };
            Ok(FileFacts {
                copy: copy(bytes, inputs, erase),
                project,
                day: meta.info.day,
                format,
                codec: codec_of(meta.spec.compression),
                rows: meta.rows,
                time: meta.time.map_or((0, 0), |t| (t.min_ms, t.max_ms)),
                seqs: seq_range(&events),
                role,
                created_at_ms,
                blocks: Some(BlockChecksums::compute(bytes, BlockChecksums::DEFAULT_BLOCK_SIZE)),
                legacy: meta.lineage.is_none(),
                torn_tail: 0,
            })
        }
    }
}

fn check_same(what: &str, inside: &str, name: &str) -> Result<(), String> {
    if inside == name {
        Ok(())
    } else {
        Err(format!("the file says {what} {inside:?}, its name says {name:?}"))
    }
}

/// The catalog's codec for a Parquet compression.
fn codec_of(c: columnar::Compression) -> Codec {
    match c {
        columnar::Compression::None => Codec::None,
        columnar::Compression::Lz4 => Codec::Lz4,
        columnar::Compression::Zstd(level) => Codec::Zstd(u8::try_from(level).unwrap_or(u8::MAX)),
    }
}

fn seq_range(events: &[StoredEvent]) -> (u64, u64) {
    let min = events.iter().map(|e| e.seq).min().unwrap_or(0);
    (min, events.iter().map(|e| e.seq).max().unwrap_or(0))
}
