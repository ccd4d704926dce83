//! Encoding a columnar segment's row groups, on the caller's thread or column by column on a few threads of its own
//! (issue 13: "use both cores for encoding").
//!
//! [`RowGroupEncoder`] does what Parquet's `ArrowWriter` does with a stream of record batches (cut them into row
//! groups of `max_row_group_row_count` rows, hand each column of each batch to that column's writer, append the
//! finished column chunks to the file in schema order), with the column writers either on the calling thread
//! (`threads = 1`) or spread over `threads` worker threads. Each column writer receives exactly the same arrays in
//! the same order either way, and a column's encoding depends only on what its writer received, so **the bytes of
//! the file do not depend on the number of threads** (tested against `ArrowWriter` itself in `tests/stream.rs`).
//!
//! With workers, the calling thread (which builds the batches: the merge and the event-to-row work of a rewrite, or
//! the decoding of a recompression's input) goes on with the next batch while the workers encode the previous ones:
//! a pipeline as well as column parallelism. What it holds besides the sequential writer: the batches handed over
//! and not yet encoded by every worker, at most [`PIPELINE_BATCHES`] (each worker's queue holds one batch).
//!
//! Priority: the workers are spawned by the thread that writes, and on Linux a new thread takes the nice value of
//! the thread that creates it, so a rewrite running at the passes' lower priority encodes at that priority too.
//! No global pool is used for that reason (a shared pool started elsewhere would run at normal priority).
//!
//! Which worker encodes which column is decided per row group from the first batch of the group (largest columns
//! first, each to the least loaded worker); it changes nothing in the output, only the balance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::errors::ParquetError;
use parquet::file::writer::SerializedFileWriter;

/// Record batches a writer with workers holds beyond the sequential writer's one: each worker's queue holds one
/// batch, and the slowest worker bounds how far the others run ahead (the caller blocks handing it a batch).
pub const PIPELINE_BATCHES: usize = 2;

type Result<T> = std::result::Result<T, ParquetError>;

/// What a worker is asked to do.
enum Job {
    /// A new row group: these columns (schema index, writer) are the worker's.
    Start(Vec<(usize, ArrowColumnWriter)>),
    /// The next rows of the row group.
    Batch(Arc<RecordBatch>),
    /// Close the worker's column writers and answer with their chunks.
    Close,
}

/// One worker thread and its two channels.
struct Worker {
    jobs: Option<SyncSender<Job>>,
    /// What its column writers hold, as of the last batch it encoded.
    memory: Arc<AtomicUsize>,
    chunks: Receiver<Result<Vec<(usize, ArrowColumnChunk)>>>,
    handle: Option<JoinHandle<()>>,
}

/// Where the column writers of the row group in progress live.
enum Columns {
    /// On the calling thread; empty between row groups.
    Inline(Vec<ArrowColumnWriter>),
    /// On workers; `started` once the current row group's writers were handed out.
    Pool { workers: Workers, started: bool },
}

/// The worker threads of one encoder, stopped and joined when dropped (a rewrite rolled back drops its writer).
struct Workers(Vec<Worker>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            worker.jobs = None;
        }
        for worker in &mut self.0 {
            if let Some(handle) = worker.handle.take() {
                // A panic in a worker was already reported as an error by the call that found it gone.
                let _ = handle.join();
            }
        }
    }
}

/// Encodes row groups into a [`SerializedFileWriter`]; see the module documentation.
pub(crate) struct RowGroupEncoder<W: std::io::Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    max_rows: usize,
    /// Rows in the row group in progress.
    buffered_rows: usize,
    columns: Columns,
    threads: usize,
}

impl<W: std::io::Write + Send> RowGroupEncoder<W> {
    /// An encoder writing `max_rows`-row groups of `schema` through `file` (whose properties must be those the
    /// `factory` was made with, as [`parquet::arrow::ArrowWriter::into_serialized_writer`] gives them), with
    /// `threads` threads (1: on the caller's). Fails when a worker thread cannot be started.
    pub(crate) fn new(
        file: SerializedFileWriter<W>,
        factory: ArrowRowGroupWriterFactory,
        schema: SchemaRef,
        max_rows: usize,
        threads: usize,
    ) -> Result<Self> {
        let columns = if threads <= 1 {
            Columns::Inline(Vec::new())
        } else {
            let workers = (0..threads).map(|k| spawn_worker(k, schema.clone())).collect::<Result<Vec<_>>>()?;
            Columns::Pool { workers: Workers(workers), started: false }
        };
        Ok(Self { file, factory, schema, max_rows: max_rows.max(1), buffered_rows: 0, columns, threads })
    }

    /// The threads encoding (1: the caller's).
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Bytes the column writers hold (encoded pages, dictionaries); with workers, as of the batches they encoded.
    pub(crate) fn memory_size(&self) -> usize {
        match &self.columns {
            Columns::Inline(writers) => writers.iter().map(ArrowColumnWriter::memory_size).sum(),
            Columns::Pool { workers, .. } => workers.0.iter().map(|w| w.memory.load(Ordering::Relaxed)).sum(),
        }
    }

    /// Appends `batch` (of the encoder's schema), cutting row groups as `ArrowWriter::write` does.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut remaining = batch.clone();
        while remaining.num_rows() > 0 {
            let room = self.max_rows - self.buffered_rows;
            let rest = (remaining.num_rows() > room).then(|| {
                let rest = remaining.slice(room, remaining.num_rows() - room);
                remaining = remaining.slice(0, room);
                rest
            });
            self.write_rows(remaining)?;
            if self.buffered_rows >= self.max_rows {
                self.flush()?;
            }
            match rest {
                Some(rest) => remaining = rest,
                None => break,
            }
        }
        Ok(())
    }

    fn write_rows(&mut self, batch: RecordBatch) -> Result<()> {
        let group = self.file.flushed_row_groups().len();
        self.buffered_rows += batch.num_rows();
        match &mut self.columns {
            Columns::Inline(writers) => {
                if writers.is_empty() {
                    *writers = self.factory.create_column_writers(group)?;
                }
                let mut writers = writers.iter_mut();
                for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
                    for leaf in compute_leaves(field.as_ref(), column)? {
                        writers.next().expect("one writer per leaf").write(&leaf)?;
                    }
                }
                Ok(())
            }
            Columns::Pool { workers: Workers(workers), started } => {
                if !*started {
                    let writers = self.factory.create_column_writers(group)?;
                    if writers.len() != batch.num_columns() {
                        return Err(ParquetError::General("nested columns are not encoded in parallel".into()));
                    }
                    let sizes: Vec<usize> = batch.columns().iter().map(|c| c.get_buffer_memory_size()).collect();
                    let mut shares: Vec<Vec<(usize, ArrowColumnWriter)>> = workers.iter().map(|_| Vec::new()).collect();
                    for (column, worker) in assign(&sizes, workers.len()).into_iter().zip(writers).enumerate() {
                        let (k, writer) = (worker.0, worker.1);
                        shares[k].push((column, writer));
                    }
                    for (worker, share) in workers.iter().zip(shares) {
                        send(worker, Job::Start(share))?;
                    }
                    *started = true;
                }
                let batch = Arc::new(batch);
                for worker in workers.iter() {
                    send(worker, Job::Batch(batch.clone()))?;
                }
                Ok(())
            }
        }
    }

    /// Closes the row group in progress, if any, and appends its column chunks to the file in schema order.
    pub(crate) fn flush(&mut self) -> Result<()> {
        let chunks: Vec<ArrowColumnChunk> = match &mut self.columns {
            Columns::Inline(writers) if writers.is_empty() => return Ok(()),
            Columns::Inline(writers) => {
                std::mem::take(writers).into_iter().map(ArrowColumnWriter::close).collect::<Result<_>>()?
            }
            Columns::Pool { started: false, .. } => return Ok(()),
            Columns::Pool { workers: Workers(workers), started } => {
                *started = false;
                for worker in workers.iter() {
                    send(worker, Job::Close)?;
                }
                let mut all: Vec<(usize, ArrowColumnChunk)> = Vec::new();
                for worker in workers.iter() {
                    let answer = worker.chunks.recv().map_err(|_| worker_gone())?;
                    all.extend(answer?);
                }
                all.sort_by_key(|(i, _)| *i);
                all.into_iter().map(|(_, c)| c).collect()
            }
        };
        self.buffered_rows = 0;
        let mut group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        Ok(())
    }

    /// Adds footer key-value metadata.
    pub(crate) fn append_key_value_metadata(&mut self, kv: parquet::file::metadata::KeyValue) {
        self.file.append_key_value_metadata(kv);
    }

    /// Flushes the last row group, writes the footer and returns the writer (the workers are stopped).
    pub(crate) fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        let Self { file, columns, .. } = self;
        drop(columns);
        file.into_inner()
    }
}

/// Which worker encodes each column: largest first, each to the least loaded (ties to the lowest index).
fn assign(sizes: &[usize], workers: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
    let mut load = vec![0usize; workers.max(1)];
    let mut owner = vec![0usize; sizes.len()];
    for i in order {
        let k = (0..load.len()).min_by_key(|&k| (load[k], k)).expect("at least one worker");
        // Every column costs something to encode, however small its buffers.
        load[k] += sizes[i] + 1024;
        owner[i] = k;
    }
    owner
}

fn worker_gone() -> ParquetError {
    ParquetError::General("a column encoding thread stopped (it panicked)".into())
}

fn send(worker: &Worker, job: Job) -> Result<()> {
    worker.jobs.as_ref().ok_or_else(worker_gone)?.send(job).map_err(|_| worker_gone())
}

fn spawn_worker(k: usize, schema: SchemaRef) -> Result<Worker> {
    let (jobs, inbox) = sync_channel::<Job>(1);
    let (outbox, chunks) = sync_channel(1);
    let memory = Arc::new(AtomicUsize::new(0));
    let theirs = memory.clone();
    let handle = std::thread::Builder::new()
        .name(format!("tierd-encode-{k}"))
        .spawn(move || work(&schema, &inbox, &outbox, &theirs))
        .map_err(|e| ParquetError::General(format!("cannot start a column encoding thread: {e}")))?;
    Ok(Worker { jobs: Some(jobs), memory, chunks, handle: Some(handle) })
}

/// A worker's loop: encode its columns of every batch; on `Close`, answer with its chunks (or the first error).
fn work(
    schema: &SchemaRef,
    inbox: &Receiver<Job>,
    outbox: &SyncSender<Result<Vec<(usize, ArrowColumnChunk)>>>,
    memory: &AtomicUsize,
) {
    let mut mine: Vec<(usize, ArrowColumnWriter)> = Vec::new();
    let mut failed: Option<ParquetError> = None;
    for job in inbox {
        match job {
            Job::Start(share) => mine = share,
            Job::Batch(batch) => {
                if failed.is_some() {
                    continue;
                }
                for (i, writer) in &mut mine {
                    let written = compute_leaves(schema.field(*i), batch.column(*i))
                        .and_then(|leaves| leaves.iter().try_for_each(|leaf| writer.write(leaf)));
                    if let Err(e) = written {
                        failed = Some(e);
                        break;
                    }
                }
                memory.store(mine.iter().map(|(_, w)| w.memory_size()).sum(), Ordering::Relaxed);
            }
            Job::Close => {
                let share = std::mem::take(&mut mine);
                memory.store(0, Ordering::Relaxed);
                let answer = match failed.take() {
                    Some(e) => Err(e),
                    None => share.into_iter().map(|(i, w)| w.close().map(|c| (i, c))).collect(),
                };
                if outbox.send(answer).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::assign;

    #[test]
    fn columns_are_balanced_largest_first() {
        // 100k to worker 0, 90k to worker 1, then each 10k to the less loaded one.
        assert_eq!(assign(&[100_000, 10_000, 10_000, 90_000], 2), vec![0, 1, 0, 1]);
        assert_eq!(assign(&[100_000, 30_000, 40_000, 20_000], 2), vec![0, 1, 1, 1]);
        assert_eq!(assign(&[5, 5, 5], 1), vec![0, 0, 0]);
        assert_eq!(assign(&[], 3), Vec::<usize>::new());
        // More workers than columns: each column its own worker, the rest idle.
        assert_eq!(assign(&[1, 2], 4), vec![1, 0]);
    }
}
