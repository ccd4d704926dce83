//! The generator's random numbers: fixed algorithms so that a seed means the same stream forever.
//!
//! `rand`'s `StdRng` and `SmallRng` are documented as not portable across `rand` releases; a benchmark corpus that
//! changes when a dependency is bumped is useless for comparing runs. So the main stream is xoshiro256++
//! ([`StreamRng`], from `rand_xoshiro`, seeded through SplitMix64 as its authors recommend) and per-event details
//! use SplitMix64 ([`Draw`]) keyed by a value stored in the event, which makes an event's bytes a pure function of
//! the event. Both algorithms are pinned by reference vectors in the tests.

use rand::{RngCore as _, SeedableRng as _};
use rand_xoshiro::SplitMix64;

/// The main stream: xoshiro256++ (Blackman and Vigna, 2019). `seed_from_u64` expands the seed with SplitMix64.
pub(crate) type StreamRng = rand_xoshiro::Xoshiro256PlusPlus;

/// Hashes two values into one key (used to derive per-user and per-session identities from the seed): one
/// SplitMix64 step from a state that mixes both.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    SplitMix64::seed_from_u64(a ^ b.rotate_left(32).wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// A cheap deterministic stream of choices keyed by one `u64` (a user, a session or one event's details): the
/// SplitMix64 sequence whose state starts at the key.
#[derive(Clone, Debug)]
pub(crate) struct Draw {
    rng: SplitMix64,
}

impl Draw {
    pub(crate) fn new(key: u64) -> Self {
        Self { rng: SplitMix64::seed_from_u64(key) }
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`); the multiply-shift bias is far below anything a demo data set could show.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks by integer weight: `items` pairs each choice with its weight.
    pub(crate) fn pick_weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut x = self.below(total);
        for &(item, weight) in items {
            if x < u64::from(weight) {
                return item;
            }
            x -= u64::from(weight);
        }
        items[items.len() - 1].0
    }

    /// Skewed towards small values in `0..n`: `P(< x) = sqrt(x / n)`, so the first tenth of the range gets about a
    /// third of the draws (popular products, short load times, small carts).
    pub(crate) fn skewed(&mut self, n: u64) -> u64 {
        let u = self.unit();
        ((u * u) * n as f64) as u64
    }
}
