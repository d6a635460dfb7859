//! A small pseudo-random generator for the torture scenario's choices: xorshift64* (Marsaglia's
//! xorshift with Vigna's multiplier), seeded per CPU. Not cryptographic: only reproducible.

/// A xorshift64* generator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rng(u64);

/// The multiplier of xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators, scrambled", 2016).
const MULTIPLIER: u64 = 0x2545_F491_4F6C_DD1D;
/// The golden-ratio increment of splitmix64, used to spread seeds (0 is not a valid state).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    /// A generator for `stream` (a CPU's slot, say) of `seed`.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        // splitmix64's finaliser, so that neighbouring streams start far apart.
        let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { GOLDEN_GAMMA } else { z })
    }

    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(MULTIPLIER)
    }

    /// A number in `0..n` (`n` > 0; the tiny modulo bias does not matter here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        (self.next() >> 11) % n.max(1)
    }
}
