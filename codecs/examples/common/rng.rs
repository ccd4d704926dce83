//! The deterministic generator the codecs benchmarks build their events with, shared so that every benchmark draws
//! from the same, fixed sequence for a given seed (runs and benchmarks stay comparable).
//!
//! Included by each example with `#[path = "common/rng.rs"] mod rng;` (it lives in a subdirectory because cargo
//! treats every `.rs` file directly in `examples/` as an example of its own).

use std::fmt::Write as _;

use rand_xoshiro::rand_core::{RngCore as _, SeedableRng as _};
use rand_xoshiro::SplitMix64;

/// SplitMix64 (the workspace's seeded generator, from `rand_xoshiro`): tiny and deterministic, enough to vary the
/// events.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::seed_from_u64(seed))
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (with a modulo bias no benchmark can notice).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A rank in `0..n` with probability roughly proportional to 1/(rank+1) (log-uniform), i.e. Zipf-like.
    pub fn zipf(&mut self, n: usize) -> usize {
        ((n as f64 + 1.0).powf(self.unit()) - 1.0).floor().min(n as f64 - 1.0) as usize
    }

    /// `digits` lowercase hex digits.
    pub fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits + 16);
        while s.len() < digits {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(digits);
        s
    }
}
