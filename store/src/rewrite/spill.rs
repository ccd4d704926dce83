//! Spill files: sorted runs a streaming rewrite writes to `DATA_DIR/spill` when what it merges does not fit its
//! memory budget at once (an external sort), and reads back row group by row group for the next merge.
//!
//! A spill file is a columnar segment (the streaming writer's output, small row groups so that many can be merged
//! at once) that no catalog record or intent names: scratch space, written without fsync, deleted when the rewrite
//! is done with it, and, after a crash, by the next start (`recovery`). It is still never read unverified: the
//! crc32c of each block is kept in memory while it is written and checked when its blocks are read back.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tierd_codecs::columnar::{
    ColumnarInput, ColumnarWriter, EventSource, MergeEvent, RowGroupEvents, ShredSurvey, SortOrder,
};
use tierd_codecs::StoredEvent;

use crate::catalog::BlockChecksums;
use crate::durable::{NewFile, OsFs, WrittenFile};
use crate::error::{Result, StoreError};
use crate::read::{GroupBytes, SparseObject};

/// Rows per row group of a spill file: a merge holds one row group of each input, so runs are cut small.
pub(super) const SPILL_ROW_GROUP_ROWS: usize = 8192;

/// A finished spill file, deleted when dropped.
pub(super) struct SpillFile {
    written: WrittenFile,
    input: ColumnarInput,
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.written.path);
    }
}

/// A spill file being written.
pub(super) struct SpillWriter {
    writer: ColumnarWriter<NewFile>,
    path: PathBuf,
}

impl SpillWriter {
    /// Starts spill file `name` under `dir`, shredded by `survey`'s decision (the survey of what it will hold),
    /// with `spec`'s column cap (lz4, small row groups), encoded on `threads` threads.
    pub(super) fn create(
        dir: &std::path::Path,
        name: &str,
        survey: &ShredSurvey,
        spec: &tierd_codecs::columnar::CodecSpec,
        threads: usize,
        pace: impl FnMut(u64) + Send + 'static,
    ) -> Result<Self> {
        let path = dir.join(format!("{name}.parquet"));
        let file = NewFile::create(&OsFs, &path, BlockChecksums::DEFAULT_BLOCK_SIZE)?.paced(pace);
        let spec = tierd_codecs::columnar::CodecSpec {
            compression: tierd_codecs::columnar::Compression::Lz4,
            row_group_rows: SPILL_ROW_GROUP_ROWS,
            ..spec.clone()
        };
        let info = tierd_codecs::columnar::SegmentInfo { segment_id: name.to_owned(), project: String::new(), day: 0 };
        let columns = survey.plan(spec.max_property_columns);
        let writer = ColumnarWriter::with_threads(file, &info, None, columns, &spec, SortOrder::EventTime, threads)
            .map_err(|e| spill_error(&path, e))?;
        Ok(Self { writer, path })
    }

    pub(super) fn push(&mut self, event: &MergeEvent) -> Result<()> {
        self.writer.push_merged(event).map_err(|e| spill_error(&self.path, e))
    }

    pub(super) fn finish(self) -> Result<SpillFile> {
        let Self { writer, path } = self;
        let (file, _) = writer.finish().map_err(|e| spill_error(&path, e))?;
        let written = file.close_unsynced().map_err(|e| StoreError::io(&path, e))?;
        let footer = read_blocks(&written, written.len.saturating_sub(footer_guess(&written)?)..written.len)?;
        let input = ColumnarInput::open(&footer).map_err(|e| spill_error(&path, e))?;
        Ok(SpillFile { written, input })
    }
}

/// How many bytes at the end of `file` hold its footer (length field included).
fn footer_guess(file: &WrittenFile) -> Result<u64> {
    let tail = file.read_at(file.len.saturating_sub(8), 8.min(file.len as usize))?;
    let range = tierd_codecs::columnar::footer_range(file.len, &tail).map_err(|e| spill_error(&file.path, e))?;
    Ok(range.end - range.start)
}

fn spill_error(path: &std::path::Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::io(path, std::io::Error::other(format!("spill file: {e}")))
}

/// The blocks of `file` covering `range`, each checked against the crc32c computed while it was written.
fn read_blocks(file: &WrittenFile, range: Range<u64>) -> Result<SparseObject> {
    let bs = file.block_size;
    let mut object = SparseObject::new(file.len, bs);
    if range.start >= range.end {
        return Ok(object);
    }
    let (first, last) = (range.start / bs, (range.end - 1) / bs);
    let start = first * bs;
    let end = ((last + 1) * bs).min(file.len);
    let bytes = Bytes::from(file.read_at(start, (end - start) as usize)?);
    for i in first..=last {
        let from = ((i - first) * bs) as usize;
        let block = bytes.slice(from..(from + bs as usize).min(bytes.len()));
        if file.block_crcs.get(i as usize) != Some(&crc32c::crc32c(&block)) {
            return Err(spill_error(&file.path, format!("block {i} does not read back as written")));
        }
        object.insert(i, block);
    }
    Ok(object)
}

impl SpillFile {
    /// What reading it holds at once: its largest row group and the blocks around it.
    pub(super) fn held_bytes(&self) -> u64 {
        self.input.max_row_group_bytes() + 2 * self.written.block_size
    }

    pub(super) fn events(self: &Arc<Self>, batch_rows: usize) -> SpillEvents {
        SpillEvents { file: self.clone(), next_group: 0, current: None, batch_rows }
    }
}

/// A spill file's events, in order.
pub(super) struct SpillEvents {
    file: Arc<SpillFile>,
    next_group: usize,
    current: Option<RowGroupEvents>,
    batch_rows: usize,
}

impl EventSource<StoreError> for SpillEvents {
    fn next_event(&mut self) -> Result<Option<StoredEvent>> {
        let path = &self.file.written.path;
        loop {
            if let Some(current) = &mut self.current {
                match current.next_event().map_err(|e| spill_error(path, e))? {
                    Some(e) => return Ok(Some(e)),
                    None => self.current = None,
                }
            }
            let input = &self.file.input;
            if self.next_group >= input.row_groups() {
                return Ok(None);
            }
            let i = self.next_group;
            self.next_group += 1;
            let bytes = GroupBytes::Blocks(read_blocks(&self.file.written, input.row_group_range(i))?);
            self.current = Some(input.row_group(i, bytes, self.batch_rows).map_err(|e| spill_error(path, e))?);
        }
    }
}
