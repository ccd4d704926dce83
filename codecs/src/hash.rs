//! Unambiguous hashing of composite keys, shared by the derived `$insert_id` and the dedup key.
//!
//! Every variable-length field is written as `len:u64le bytes`, fixed-width fields as their little-endian bytes, so
//! two different field sequences never feed the hash the same byte stream (e.g. `("ab", "c")` vs `("a", "bc")`).

use xxhash_rust::xxh3::Xxh3Default;

/// Streaming xxh3-128 over a length-prefixed field encoding.
pub(crate) struct KeyHasher(Xxh3Default);

impl KeyHasher {
    pub(crate) fn new() -> Self {
        Self(Xxh3Default::new())
    }

    /// Writes a variable-length field, prefixed by its length.
    pub(crate) fn bytes(&mut self, field: &[u8]) -> &mut Self {
        self.0.update(&(field.len() as u64).to_le_bytes());
        self.0.update(field);
        self
    }

    pub(crate) fn i64(&mut self, value: i64) -> &mut Self {
        self.0.update(&value.to_le_bytes());
        self
    }

    /// Writes raw bytes with no length; only [`StreamedField`] uses it, and it accounts for the length itself.
    fn raw(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// Streams one field into a [`KeyHasher`] and then writes its length after it, so a field can be hashed without
/// first being materialised (e.g. a JSON serialisation). A length suffix keeps the encoding unambiguous when the
/// streamed field is the last one, which is the only way it is used.
pub(crate) struct StreamedField<'a> {
    hasher: &'a mut KeyHasher,
    len: u64,
}

impl<'a> StreamedField<'a> {
    pub(crate) fn new(hasher: &'a mut KeyHasher) -> Self {
        Self { hasher, len: 0 }
    }

    pub(crate) fn finish(self) {
        self.hasher.raw(&self.len.to_le_bytes());
    }
}

impl std::io::Write for StreamedField<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.raw(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds [`Xxh3Hasher`]s for the maps a query fills per row or per group (group keys by value): xxh3 is several
/// times faster than `std`'s SipHash on short keys. The seed is drawn from `std`'s `RandomState` for each map, so
/// keys that collide in one map do not collide in the next.
#[derive(Debug, Clone, Copy)]
pub struct Xxh3State(u64);

impl Default for Xxh3State {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Xxh3State(std::collections::hash_map::RandomState::new().hash_one(0x0074_6965_7264_u64))
    }
}

impl std::hash::BuildHasher for Xxh3State {
    type Hasher = Xxh3Hasher;

    fn build_hasher(&self) -> Xxh3Hasher {
        Xxh3Hasher(self.0)
    }
}

/// xxh3-64 of each `write`, seeded with the state so far (see [`Xxh3State`]).
#[derive(Debug, Clone, Copy)]
pub struct Xxh3Hasher(u64);

impl std::hash::Hasher for Xxh3Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
}
