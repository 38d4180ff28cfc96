//! Deterministic pseudo-random numbers: splitmix64 streams keyed by a seed and a tuple of keys.

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a seed and a tuple of keys into one well-mixed word.
pub fn hash(seed: u64, keys: &[u64]) -> u64 {
    keys.iter().fold(mix(seed ^ GAMMA), |h, &k| {
        mix(h ^ mix(k.wrapping_add(GAMMA)))
    })
}

/// Maps a hash to a uniform number in [0, 1).
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A splitmix64 stream; independent streams come from different key tuples.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, keys: &[u64]) -> Self {
        Rng(hash(seed, keys))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`lo < hi`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        unit(self.next_u64()) < p
    }

    /// An index drawn with probability proportional to `weights[i]`.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_seed_and_keys() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1, &[2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(1, &[2]).next_u64(), Rng::new(2, &[2]).next_u64());
        assert_ne!(Rng::new(1, &[2]).next_u64(), Rng::new(1, &[3]).next_u64());
        assert_ne!(hash(0, &[1, 2]), hash(0, &[2, 1]));
    }

    #[test]
    fn ranges_are_respected_and_covered() {
        let mut r = Rng::new(7, &[]);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let v = r.range(-2, 3);
            assert!((-2..3).contains(&v));
            seen[usize::try_from(v + 2).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&c| c > 1_500), "{seen:?}");
        let picks: Vec<usize> = (0..1_000).map(|_| r.weighted(&[0, 1, 0, 3])).collect();
        assert!(picks.iter().all(|&i| i == 1 || i == 3));
        assert!(picks.iter().filter(|&&i| i == 3).count() > 650);
        let hits = (0..10_000).filter(|_| r.chance(0.2)).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
    }
}
