//! A rewrite's output file, written as a stream: created create-only once its intent is durable, filled row group
//! by row group through the streaming columnar writer, then made durable and verified from disk (steps 3 and 4 of
//! every rewrite; see `super`).

use std::ops::Range;
use std::path::PathBuf;

use bytes::Bytes;
use tierd_codecs::columnar::{
    self, ChunkReader, CodecSpec, ColumnarMeta, ColumnarWriter, Length, Lineage, MergeEvent, ParquetError, SegmentInfo,
    ShreddedColumn, SortOrder, WrittenSummary, FOOTER_TAIL_LEN,
};

use super::{Rewriter, Steps};
use crate::catalog::{BlockChecksums, Intent};
use crate::durable::NewFile;
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;

/// An output being written.
pub(super) struct OutputFile {
    pub(super) id: SegmentId,
    path: PathBuf,
    writer: ColumnarWriter<NewFile>,
}

/// An output on disk, durable and verified.
pub(super) struct FinishedOutput {
    pub(super) id: SegmentId,
    pub(super) summary: WrittenSummary,
    pub(super) bytes: u64,
    pub(super) checksum: u32,
    pub(super) blocks: BlockChecksums,
    pub(super) meta: ColumnarMeta,
}

impl Rewriter {
    /// Creates the file `intent` names (the intent is durable already) and starts the segment in it.
    pub(super) fn create_output(
        &self,
        intent: &Intent,
        info: &SegmentInfo,
        lineage: &Lineage,
        columns: Vec<ShreddedColumn>,
        spec: &CodecSpec,
    ) -> Result<OutputFile> {
        let path = self.ctx.resolve(&intent.location.path)?;
        let file = NewFile::create(self.ctx.fs.as_ref(), &path, BlockChecksums::DEFAULT_BLOCK_SIZE)?;
        let file = file.paced(self.pacer());
        let threads = self.encode_threads;
        let writer =
            ColumnarWriter::with_threads(file, info, Some(lineage), columns, spec, SortOrder::EventTime, threads)
                .map_err(|e| StoreError::Corrupt { id: intent.segment, message: format!("encode: {e}") })?;
        Ok(OutputFile { id: intent.segment, path, writer })
    }

    /// Steps 3 and 4: the rest written, the file and its directory fsynced (failpoint `steps.write`), then read
    /// back from disk: every block's crc32c and the whole file's equal what was computed while writing, and the
    /// footer read from disk holds the rows written (failpoint `steps.verify`).
    pub(super) fn finish_output(&self, output: OutputFile, steps: &Steps) -> Result<FinishedOutput> {
        let OutputFile { id, path, writer } = output;
        let corrupt = |message: String| StoreError::Corrupt { id, message };
        let (file, summary) = writer.finish().map_err(|e| corrupt(format!("encode: {e}")))?;
        let written = file.finish(self.ctx.fs.as_ref(), &self.ctx.failpoints, steps.write)?;
        written.read_back(self.pacer())?;
        let tail = written.read_at(written.len.saturating_sub(FOOTER_TAIL_LEN), FOOTER_TAIL_LEN as usize)?;
        let footer = columnar::footer_range(written.len, &tail).map_err(|e| corrupt(format!("verify: {e}")))?;
        let bytes = written.read_at(footer.start, (footer.end - footer.start) as usize)?;
        let meta = columnar::read_meta_from(&Tail { len: written.len, start: footer.start, bytes: Bytes::from(bytes) })
            .map_err(|e| corrupt(format!("verify: {e}")))?;
        if meta.rows != summary.rows {
            return Err(corrupt(format!("verify: {} rows on disk, {} written", meta.rows, summary.rows)));
        }
        self.ctx.failpoints.hit(steps.verify).map_err(|e| StoreError::io(&path, e))?;
        let blocks = BlockChecksums { block_size: written.block_size, crcs: written.block_crcs };
        Ok(FinishedOutput { id, summary, bytes: written.len, checksum: written.crc, blocks, meta })
    }

    /// Draws written and read-back bytes from the IO budget when the rewriter is budgeted.
    pub(super) fn pacer(&self) -> impl FnMut(u64) + Send + 'static {
        let budget = self.budgeted.then(|| self.ctx.budget().clone());
        move |bytes| {
            if let Some(b) = &budget {
                b.acquire_disk_blocking(bytes);
            }
        }
    }
}

impl OutputFile {
    pub(super) fn push(&mut self, event: &MergeEvent) -> Result<()> {
        let id = self.id;
        self.writer.push_merged(event).map_err(|e| StoreError::Corrupt { id, message: format!("encode: {e}") })
    }

    pub(super) fn writer(&mut self) -> &mut ColumnarWriter<NewFile> {
        &mut self.writer
    }
}

/// The footer of a file read from disk, served at its offsets (all a footer parse reads).
struct Tail {
    len: u64,
    start: u64,
    bytes: Bytes,
}

impl Tail {
    fn slice(&self, start: u64, len: usize) -> std::result::Result<Bytes, ParquetError> {
        let range: Option<Range<usize>> = start
            .checked_sub(self.start)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| Some(s..s.checked_add(len)?))
            .filter(|r| r.end <= self.bytes.len());
        range
            .map(|r| self.bytes.slice(r))
            .ok_or_else(|| ParquetError::General(format!("bytes {start}+{len} lie outside the footer read")))
    }
}

impl Length for Tail {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Tail {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> std::result::Result<Self::T, ParquetError> {
        let len = usize::try_from(self.len.saturating_sub(start)).unwrap_or(usize::MAX);
        Ok(bytes::Buf::reader(self.slice(start, len)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> std::result::Result<Bytes, ParquetError> {
        self.slice(start, length)
    }
}
