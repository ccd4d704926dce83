//! Short strings without allocation for the serializer's hot path: [`StackStr`] and the hex and UUID forms of the
//! generator's ids.

use std::fmt::{self, Write as _};

use serde::{Serialize, Serializer};

/// A short string built on the stack (ids, URLs): avoids an allocation per property on the hot path.
#[derive(Clone, Copy)]
pub(crate) struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    pub(crate) fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended (see `write_str`), so the bytes are UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).expect("StackStr holds whole UTF-8 strings")
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<const N: usize> Serialize for StackStr<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

pub(crate) fn hex64(v: u64) -> StackStr<16> {
    let mut s = StackStr::new();
    let _ = write!(s, "{v:016x}");
    s
}

pub(crate) fn hex128(v: u128) -> StackStr<32> {
    let mut s = StackStr::new();
    let _ = write!(s, "{v:032x}");
    s
}

/// Writes a version-4-shaped UUID made from two random words.
pub(crate) fn write_uuid<const N: usize>(out: &mut StackStr<N>, hi: u64, lo: u64) {
    let _ = write!(
        out,
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFF,
        0x8000 | ((lo >> 48) & 0x3FFF),
        lo & 0xFFFF_FFFF_FFFF
    );
}
