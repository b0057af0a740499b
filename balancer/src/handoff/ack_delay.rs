//! How long a worker has lately taken to acknowledge what it was handed,
//! from the master's send to the worker's publishing of the ack (its own
//! clock, not the time the master came to read it): the wait a connection
//! handed to it now can expect before the worker takes it. A worker busy
//! with long loop turns (deep pipelines, a slow handler) shows it here
//! before its connection count does. Kept as a peak EWMA (Finagle's and
//! Linkerd's load balancers): a delay longer than the estimate replaces it
//! at once, a shorter one is averaged in with time constant
//! [`ACK_DELAY_TAU`], and with no new delay the estimate decays toward zero,
//! so a worker that is handed nothing for a while is not judged for long
//! by one slow turn, and idle workers end up judged by their counts alone.

use std::time::{Duration, Instant};

/// The averaging and decay time constant. Measured against 5 ms on the
/// unequal run (`results/experiments-20261206/`, with the delay taken to the
/// master's reading of the ack then): 5 ms left `least` level with `rr` on
/// the churn half's p99, 20 ms put it ahead.
pub const ACK_DELAY_TAU: Duration = Duration::from_millis(20);

/// One worker's hand-off-to-acknowledgement delay, peak-EWMA.
#[derive(Clone, Copy, Debug, Default)]
pub struct AckDelay {
    estimate: Duration,
    observed_at: Option<Instant>,
}

impl AckDelay {
    /// The weight the estimate of `observed_at` keeps at `now`.
    fn kept(&self, now: Instant) -> f64 {
        self.observed_at.map_or(0.0, |at| {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            (-elapsed / ACK_DELAY_TAU.as_secs_f64()).exp()
        })
    }

    /// A batch handed over `delay` before `now` was acknowledged at `now`.
    pub fn observe(&mut self, delay: Duration, now: Instant) {
        if delay > self.estimate {
            self.estimate = delay;
        } else {
            let kept = self.kept(now);
            self.estimate = self.estimate.mul_f64(kept) + delay.mul_f64(1.0 - kept);
        }
        self.observed_at = Some(now);
    }

    /// The estimate at `now`: the last one, decayed since it was made.
    pub fn at(&self, now: Instant) -> Duration {
        self.estimate.mul_f64(self.kept(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_longer_delay_counts_at_once_a_shorter_one_over_time() {
        let start = Instant::now();
        let mut delay = AckDelay::default();
        assert_eq!(delay.at(start), Duration::ZERO, "nothing observed");
        delay.observe(Duration::from_micros(100), start);
        delay.observe(Duration::from_millis(10), start);
        assert_eq!(delay.at(start), Duration::from_millis(10), "the peak, at once");
        // A short delay a time constant later: about 1/e of the peak stays.
        let later = start + ACK_DELAY_TAU;
        delay.observe(Duration::from_micros(100), later);
        let estimate = delay.at(later);
        assert!((Duration::from_micros(3_700)..Duration::from_micros(3_800)).contains(&estimate), "{estimate:?}");
        // Nothing more observed: it decays toward zero.
        assert!(delay.at(later + ACK_DELAY_TAU * 10) < Duration::from_micros(1));
    }
}
