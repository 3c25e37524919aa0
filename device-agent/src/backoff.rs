//! The agent's reconnect policy: exponential backoff with jitter, so a fleet that lost its
//! server together never comes back in lockstep. The scale benchmark's storm uses it too.

use std::time::Duration;

use rand::Rng;

/// Waits of 100 ms, 200 ms, 400 ms … up to `max`, each scaled by a random factor in
/// [0.5, 1.5).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const MIN: Duration = Duration::from_millis(100);

    pub fn new(max: Duration) -> Backoff {
        let max = max.max(Self::MIN);
        Backoff {
            min: Self::MIN,
            max,
            next: Self::MIN,
        }
    }

    /// The wait before the next attempt; doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        let wait = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// After a successful connection: start from the shortest wait again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        let nominal = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (w, n) in waits.iter().zip(nominal) {
            let n = Duration::from_millis(n);
            assert!(
                *w >= n / 2 && *w < n * 3 / 2,
                "{w:?} outside jitter of {n:?}"
            );
        }
        b.reset();
        assert!(b.next_wait() < Duration::from_millis(150));
    }
}
