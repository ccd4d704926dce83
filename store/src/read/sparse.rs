//! A cold object of which only some blocks were fetched (and verified), as a Parquet [`ChunkReader`].
//!
//! The Parquet reader asks for byte ranges; every range must lie in fetched blocks. A read that reaches a block
//! that was not fetched is an error naming the range (the read plan missed it), never zeros or a short read.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use tierd_codecs::columnar::{ChunkReader, Length, ParquetError};

/// Fetched blocks of an object of `len` bytes cut in `block_size`-byte blocks.
#[derive(Debug, Clone)]
pub(crate) struct SparseObject {
    len: u64,
    block_size: u64,
    blocks: BTreeMap<u64, Bytes>,
}

impl SparseObject {
    pub(crate) fn new(len: u64, block_size: u64) -> Self {
        assert!(block_size > 0, "block size must be positive");
        Self { len, block_size, blocks: BTreeMap::new() }
    }

    /// The blocks covering `ranges` that are not held yet, ascending.
    pub(crate) fn missing(&self, ranges: &[Range<u64>]) -> Vec<u64> {
        let mut out: Vec<u64> = ranges
            .iter()
            .filter(|r| r.start < r.end)
            .flat_map(|r| r.start / self.block_size..=(r.end.min(self.len).max(r.start + 1) - 1) / self.block_size)
            .filter(|i| !self.blocks.contains_key(i))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Adds block `i` (already verified).
    pub(crate) fn insert(&mut self, i: u64, block: Bytes) {
        self.blocks.insert(i, block);
    }

    /// Bytes of the blocks held.
    pub(crate) fn bytes_held(&self) -> u64 {
        self.blocks.values().map(|b| b.len() as u64).sum()
    }

    /// The blocks from the one holding `start` through the end of the run of consecutive held blocks, the first
    /// one sliced to begin at `start`.
    fn run_from(&self, start: u64) -> Result<VecDeque<Bytes>, ParquetError> {
        if start >= self.len {
            return Err(self.not_fetched(start..start + 1));
        }
        let first = start / self.block_size;
        let mut run = VecDeque::new();
        for (i, (&index, block)) in self.blocks.range(first..).enumerate() {
            if index != first + i as u64 {
                break;
            }
            let skip = if i == 0 { (start - index * self.block_size) as usize } else { 0 };
            run.push_back(block.slice(skip..));
        }
        if run.is_empty() {
            return Err(self.not_fetched(start..start + 1));
        }
        Ok(run)
    }

    fn not_fetched(&self, range: Range<u64>) -> ParquetError {
        ParquetError::General(format!(
            "bytes {}..{} of a {}-byte cold object were not fetched (a read outside its read plan)",
            range.start, range.end, self.len
        ))
    }
}

impl Length for SparseObject {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparseObject {
    type T = RunReader;

    fn get_read(&self, start: u64) -> Result<RunReader, ParquetError> {
        Ok(RunReader(self.run_from(start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let range = start..start.saturating_add(length as u64);
        if range.end > self.len {
            return Err(self.not_fetched(range));
        }
        if length == 0 {
            return Ok(Bytes::new());
        }
        let mut run = self.run_from(start)?;
        let first = run.pop_front().expect("a run holds a block");
        if first.len() >= length {
            return Ok(first.slice(..length));
        }
        let mut out = BytesMut::with_capacity(length);
        out.extend_from_slice(&first);
        for block in run {
            let take = (length - out.len()).min(block.len());
            out.extend_from_slice(&block[..take]);
            if out.len() == length {
                return Ok(out.freeze());
            }
        }
        Err(self.not_fetched(range))
    }
}

/// Reads a run of consecutive fetched blocks; ends (EOF) where the run ends.
pub(crate) struct RunReader(VecDeque<Bytes>);

impl Read for RunReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(front) = self.0.front_mut() {
            if front.is_empty() {
                self.0.pop_front();
                continue;
            }
            let n = front.len().min(buf.len());
            buf[..n].copy_from_slice(&front[..n]);
            bytes::Buf::advance(front, n);
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 25-byte object in 10-byte blocks, blocks 0 and 2 held (block 2 is the short last one).
    fn object() -> SparseObject {
        let data: Vec<u8> = (0..25).collect();
        let mut o = SparseObject::new(25, 10);
        o.insert(0, Bytes::copy_from_slice(&data[0..10]));
        o.insert(2, Bytes::copy_from_slice(&data[20..25]));
        o
    }

    #[test]
    fn serves_held_blocks_and_refuses_the_rest() {
        let mut o = object();
        assert_eq!(&o.get_bytes(3, 5).unwrap()[..], &[3, 4, 5, 6, 7]);
        assert_eq!(&o.get_bytes(20, 5).unwrap()[..], &[20, 21, 22, 23, 24]);
        assert!(o.get_bytes(8, 4).unwrap_err().to_string().contains("bytes 8..12"), "spans a missing block");
        assert!(o.get_bytes(12, 1).is_err());
        assert!(o.get_bytes(24, 2).is_err(), "past the end");
        assert_eq!(o.missing(&[0..5, 8..21, 24..25]), vec![1]);
        o.insert(1, (10..20).collect::<Vec<u8>>().into());
        assert_eq!(o.missing(std::slice::from_ref(&(0..25))), Vec::<u64>::new());
        assert_eq!(&o.get_bytes(8, 14).unwrap()[..], &(8..22).collect::<Vec<u8>>()[..]);
        let mut all = Vec::new();
        o.get_read(17).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, (17..25).collect::<Vec<u8>>());
        assert_eq!(o.bytes_held(), 25);
    }

    #[test]
    fn a_read_stops_where_the_fetched_run_ends() {
        let o = object();
        let mut head = Vec::new();
        o.get_read(4).unwrap().read_to_end(&mut head).unwrap();
        assert_eq!(head, (4..10).collect::<Vec<u8>>());
        assert!(o.get_read(15).is_err());
        assert!(o.get_read(25).is_err());
    }
}
