//! Shared pieces of the bench tools: how seeded favorites are spread over
//! users, a latency histogram, and SVG line charts.

pub mod chart;

/// How many of `rows` seeded favorites user `u` of `users` holds: every
/// 50th user is heavy (about 20,000 at 20,000,000 rows over 10,000 users),
/// every 10th has about 4,000, the rest about 1,400. Never decreases as
/// `rows` grows, so a database can be grown in steps.
pub fn favorites_of(u: usize, users: usize, rows: u64) -> u64 {
    let weight = |u: usize| {
        if u.is_multiple_of(50) {
            70
        } else if u.is_multiple_of(10) {
            14
        } else {
            5
        }
    };
    let heavy = users.div_ceil(50);
    let mid = users.div_ceil(10) - heavy;
    let total = (heavy * 70 + mid * 14 + (users - heavy - mid) * 5) as u64;
    weight(u) as u64 * rows / total
}

/// Latencies in microseconds, in log-linear buckets (32 per power of two,
/// so a percentile is within about 3%).
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { buckets: vec![0; 64 + 40 * 32], count: 0, sum: 0 }
    }
}

impl Histogram {
    fn index(micros: u64) -> usize {
        if micros < 64 {
            return micros as usize;
        }
        let exp = 63 - micros.leading_zeros() as usize;
        let sub = ((micros >> (exp - 5)) & 31) as usize;
        (64 + (exp - 6) * 32 + sub).min(64 + 40 * 32 - 1)
    }

    fn lower_bound(index: usize) -> u64 {
        if index < 64 {
            return index as u64;
        }
        let exp = (index - 64) / 32 + 6;
        let sub = ((index - 64) % 32) as u64;
        (32 + sub) << (exp - 5)
    }

    /// Counts one latency.
    pub fn record(&mut self, micros: u64) {
        self.buckets[Self::index(micros)] += 1;
        self.count += 1;
        self.sum += micros;
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The latency at percentile `p` (0–100), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = (Self::lower_bound(i), Self::lower_bound(i + 1));
                return (low + high) as f64 / 2.0 / 1000.0;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_grow_with_the_table_and_add_up_to_about_the_total() {
        let users = 10_000;
        let sum: u64 = (0..users).map(|u| favorites_of(u, users, 20_000_000)).sum();
        assert!((19_990_000..=20_000_000).contains(&sum), "{sum}");
        assert!((19_000..=21_000).contains(&favorites_of(0, users, 20_000_000)));
        for u in 0..100 {
            assert!(favorites_of(u, users, 1_000_000) <= favorites_of(u, users, 10_000_000));
        }
    }

    #[test]
    fn percentiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let p50 = h.percentile_ms(50.0);
        assert!((4.8..=5.2).contains(&p50), "{p50}");
        let p99 = h.percentile_ms(99.0);
        assert!((9.6..=10.2).contains(&p99), "{p99}");
    }
}
