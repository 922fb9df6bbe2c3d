//! Summaries of timing samples.

use std::fmt;
use std::time::{Duration, Instant};

/// Order statistics of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub min: Duration,
    pub median: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples` (at least one).
    pub fn of(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort_unstable();
        let n = s.len();
        // nearest-rank percentiles
        let rank = |q: f64| {
            let r = (q * n as f64).ceil() as usize;
            s[r.clamp(1, n) - 1]
        };
        let total: Duration = s.iter().sum();
        Self {
            n,
            min: s[0],
            median: rank(0.5),
            p95: rank(0.95),
            p99: rank(0.99),
            max: s[n - 1],
            mean: total / u32::try_from(n).expect("fewer than 2^32 samples"),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "median {}  p95 {}  min {}  max {}  mean {}  (n={})",
            ms(self.median),
            ms(self.p95),
            ms(self.min),
            ms(self.max),
            ms(self.mean),
            self.n
        )
    }
}

/// A duration in milliseconds, with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Runs `f` `warmup` times untimed, then `iters` times timed.
pub fn sample<T>(warmup: usize, iters: usize, mut f: impl FnMut() -> T) -> Summary {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let mut out = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(f());
        out.push(t.elapsed());
    }
    Summary::of(&out)
}

/// Prints one result line: a label, the summary and the verdict against a bound on the median.
pub fn report(label: &str, s: &Summary, bound: Option<Duration>) {
    let verdict = match bound {
        Some(b) if s.median <= b => format!("  PASS (bound {})", ms(b)),
        Some(b) => format!("  FAIL (bound {})", ms(b)),
        None => String::new(),
    };
    println!("  {label:<44} {s}{verdict}");
}
