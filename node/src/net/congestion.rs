//! Congestion control that tells random loss from congestion.
//!
//! Goals:
//! - Fill a long, slightly lossy link (home to home over the internet, hotel
//!   Wi-Fi, 4G): a loss that comes while the path shows no queue is noise
//!   on the wire, not a sign we send too fast, and does not shrink the
//!   window. Plain loss-based control (Cubic, NewReno) loses 90 % of a
//!   100 Mbit/s, 50 ms path to 0.1 % random loss.
//! - Back off as Cubic does where it matters: when the round-trip time
//!   shows a queue building at the bottleneck, when losses in the last two
//!   round trips exceed [`HEAVY_LOSS_PERCENT`] (a policer, a link that
//!   drops without queueing), and on persistent congestion.
//! - Keep quinn's Cubic for everything else (slow start, window growth,
//!   recovery periods): this module only decides which loss events reach it.
//!
//! Non-goals: a new controller. quinn's BBR (v1) filled a no-loss link
//! about 10 % short of TCP in our measurements (its ProbeRTT and gain
//! cycling), and is not linked; plain Cubic stays available for A/B
//! (`HDP_CONGESTION=cubic`).
//!
//! The rule is TCP Veno's observation made with QUIC's own RTT samples: a
//! queue shows as smoothed RTT above the path's minimum by more than
//! [`QUEUE_DELAY_FRACTION`] of the minimum (at least [`QUEUE_DELAY_MIN`]).

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics, CubicConfig};
use quinn_proto::RttEstimator;

/// Losses above this share of the bytes of the last two round trips are
/// congestion whatever the RTT says: a link that drops without queueing
/// still gets the back-off it asks for. Random loss well above what real
/// paths show (1 %) stays below it.
pub const HEAVY_LOSS_PERCENT: u64 = 3;
/// A heavy-loss verdict needs at least this many lost packets in the two
/// round trips: on a small window a single loss is a large share.
pub const HEAVY_LOSS_PACKETS: u64 = 4;
/// Queueing delay, as a share of the minimum RTT, that marks a queue.
pub const QUEUE_DELAY_FRACTION: u32 = 4; // 1/4: 12.5 ms on a 50 ms path
/// Queueing delay below this never marks a queue (jitter on short paths).
pub const QUEUE_DELAY_MIN: Duration = Duration::from_millis(5);

/// Builds a [`LossTolerant`] around a fresh Cubic for each connection.
#[derive(Debug, Default)]
pub struct LossTolerantConfig {
    cubic: Arc<CubicConfig>,
}

impl ControllerFactory for LossTolerantConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(LossTolerant {
            inner: self.cubic.clone().build(now, current_mtu),
            mtu: u64::from(current_mtu),
            srtt: None,
            min_rtt: None,
            round_start: now,
            round: Bytes::default(),
            previous: Bytes::default(),
        })
    }
}

/// Bytes acknowledged and lost in one round trip.
#[derive(Debug, Default, Clone, Copy)]
struct Bytes {
    acked: u64,
    lost: u64,
}

/// Cubic that hears only the loss events that mean congestion.
pub struct LossTolerant {
    inner: Box<dyn Controller>,
    mtu: u64,
    srtt: Option<Duration>,
    min_rtt: Option<Duration>,
    round_start: Instant,
    round: Bytes,
    previous: Bytes,
}

impl LossTolerant {
    /// Starts a new accounting round once a smoothed RTT has passed.
    fn roll(&mut self, now: Instant) {
        let rtt = self.srtt.unwrap_or(Duration::from_millis(100));
        if now.saturating_duration_since(self.round_start) >= rtt {
            self.previous = self.round;
            self.round = Bytes::default();
            self.round_start = now;
        }
    }

    /// Whether the path shows a queue: smoothed RTT well above its minimum.
    fn queueing(&self) -> bool {
        match (self.srtt, self.min_rtt) {
            (Some(srtt), Some(min)) => {
                let allowed = (min / QUEUE_DELAY_FRACTION).max(QUEUE_DELAY_MIN);
                srtt > min + allowed
            }
            // No samples yet: treat the loss as Cubic would.
            _ => true,
        }
    }

    /// Whether the last two round trips lost too much to be noise.
    fn heavy_loss(&self) -> bool {
        let lost = self.round.lost + self.previous.lost;
        let total = lost + self.round.acked + self.previous.acked;
        lost >= HEAVY_LOSS_PACKETS * self.mtu && lost * 100 > total * HEAVY_LOSS_PERCENT
    }
}

impl Controller for LossTolerant {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool, rtt: &RttEstimator) {
        self.srtt = Some(rtt.get());
        self.min_rtt = Some(rtt.min());
        self.roll(now);
        self.round.acked += bytes;
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(&mut self, now: Instant, in_flight: u64, app_limited: bool, largest: Option<u64>) {
        self.inner.on_end_acks(now, in_flight, app_limited, largest);
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool, lost_bytes: u64) {
        self.roll(now);
        self.round.lost += lost_bytes;
        if persistent || self.queueing() || self.heavy_loss() {
            self.inner.on_congestion_event(now, sent, persistent, lost_bytes);
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(LossTolerant {
            inner: self.inner.clone_box(),
            mtu: self.mtu,
            srtt: self.srtt,
            min_rtt: self.min_rtt,
            round_start: self.round_start,
            round: self.round,
            previous: self.previous,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u16 = 1200;

    /// A controller past slow start, on a 50 ms path, with a round of
    /// traffic acknowledged.
    fn controller(now: Instant) -> LossTolerant {
        let mut c = LossTolerant {
            inner: Arc::new(CubicConfig::default()).build(now, MTU),
            mtu: u64::from(MTU),
            srtt: Some(Duration::from_millis(50)),
            min_rtt: Some(Duration::from_millis(50)),
            round_start: now,
            round: Bytes::default(),
            previous: Bytes { acked: 1_000_000, lost: 0 },
        };
        c.round.acked = 1_000_000;
        c
    }

    /// Reports a loss of `packets` 10 ms later; whether the window shrank.
    fn shrinks(c: &mut LossTolerant, now: Instant, persistent: bool, packets: u64) -> bool {
        let before = c.window();
        let later = now + Duration::from_millis(10);
        c.on_congestion_event(later, later, persistent, packets * u64::from(MTU));
        c.window() < before
    }

    #[test]
    fn random_loss_on_a_path_without_a_queue_keeps_the_window() {
        let now = Instant::now();
        let mut c = controller(now);
        assert!(!shrinks(&mut c, now, false, 1));
    }

    #[test]
    fn loss_with_a_queue_shrinks_the_window() {
        let now = Instant::now();
        let mut c = controller(now);
        // 50 ms path, 70 ms smoothed: 20 ms of queue, over the 12.5 ms allowed.
        c.srtt = Some(Duration::from_millis(70));
        assert!(shrinks(&mut c, now, false, 1));
    }

    #[test]
    fn a_little_jitter_is_not_a_queue() {
        let now = Instant::now();
        let mut c = controller(now);
        c.srtt = Some(Duration::from_millis(60)); // 10 ms over: under a quarter
        assert!(!c.queueing());
        c.min_rtt = Some(Duration::from_millis(2));
        c.srtt = Some(Duration::from_millis(6)); // 4 ms over a 2 ms path: under 5 ms
        assert!(!c.queueing());
    }

    #[test]
    fn heavy_loss_shrinks_the_window_without_a_queue() {
        let now = Instant::now();
        let mut c = controller(now);
        c.previous = Bytes::default();
        c.round = Bytes { acked: 100 * u64::from(MTU), lost: 0 };
        // 5 of 105 packets: above 3 % and at least 4 packets.
        assert!(shrinks(&mut c, now, false, 5));
    }

    #[test]
    fn few_losses_on_a_small_window_are_not_heavy() {
        let now = Instant::now();
        let mut c = controller(now);
        c.previous = Bytes::default();
        c.round = Bytes { acked: 20 * u64::from(MTU), lost: 3 * u64::from(MTU) };
        assert!(!c.heavy_loss(), "3 packets are under HEAVY_LOSS_PACKETS");
    }

    #[test]
    fn persistent_congestion_always_counts() {
        let now = Instant::now();
        let mut c = controller(now);
        assert!(shrinks(&mut c, now, true, 1));
    }
}
