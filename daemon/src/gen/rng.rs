//! The generator's random numbers: a fixed algorithm so that a seed means the same stream forever.
//!
//! `rand`'s `StdRng` and `SmallRng` are documented as not portable across `rand` releases; a benchmark corpus that
//! changes when a dependency is bumped is useless for comparing runs. So the main stream uses xoshiro256++ (written out
//! here, 20 lines, checked against the reference vectors) and per-event details use SplitMix64 keyed by a value stored
//! in the event, which makes an event's bytes a pure function of the event.

use rand::RngCore;

/// One SplitMix64 step: advances `state` and returns a well-mixed 64-bit value.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes two values into one key (used to derive per-user and per-session identities from the seed).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut state = a ^ b.rotate_left(32).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    splitmix64(&mut state)
}

/// xoshiro256++ (Blackman and Vigna, 2019).
#[derive(Clone, Debug)]
pub(crate) struct StreamRng {
    s: [u64; 4],
}

impl StreamRng {
    /// Expands a 64-bit seed into the 256-bit state with SplitMix64, as the reference implementation recommends.
    pub(crate) fn seed_from_u64(seed: u64) -> Self {
        let mut state = seed;
        let s = [splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state)];
        Self { s }
    }

    #[cfg(test)]
    pub(crate) fn from_state(s: [u64; 4]) -> Self {
        Self { s }
    }
}

impl RngCore for StreamRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A cheap deterministic stream of choices keyed by one `u64` (a user, a session or one event's details).
#[derive(Clone, Debug)]
pub(crate) struct Draw {
    state: u64,
}

impl Draw {
    pub(crate) fn new(key: u64) -> Self {
        Self { state: key }
    }

    pub(crate) fn next(&mut self) -> u64 {
        splitmix64(&mut self.state)
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
