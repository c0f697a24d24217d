//! The open-loop schedule: when each request is due, from which device,
//! and whether its facts changed since the device's last run.
//!
//! Request `k` is due `k / rate` seconds after the start, whatever happened
//! to the requests before it: a slow server does not slow the schedule down
//! (no coordinated omission), and each request's latency is measured from
//! when it was due, not from when it could finally be sent.

use std::time::Duration;

use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// A constant request rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    per_second: f64,
}

impl Pacing {
    /// `per_second` requests a second; it must be positive and finite.
    pub fn new(per_second: f64) -> Option<Pacing> {
        (per_second.is_finite() && per_second > 0.0).then_some(Pacing { per_second })
    }

    pub fn per_second(self) -> f64 {
        self.per_second
    }

    /// When request `number` (from 0) is due, after the start.
    pub fn due(self, number: u64) -> Duration {
        Duration::from_secs_f64(number as f64 / self.per_second)
    }

    /// How many requests fall due within `duration`: those due strictly
    /// before it ends.
    pub fn count_within(self, duration: Duration) -> u64 {
        let exact = duration.as_secs_f64() * self.per_second;
        // ceil, forgiving the float error of an exact product (2 s × 500/s).
        (exact - 1e-9).ceil().max(0.0) as u64
    }
}

/// What a due run is meant to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The machine changed since its last run: a full report.
    Full,
    /// Nothing changed: a heartbeat (or a full report, as the agent sends,
    /// when the server never acknowledged these facts).
    Heartbeat,
}

/// One due request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// From 0, in the order they fall due.
    pub number: u64,
    /// When it is due, after the start.
    pub due: Duration,
    /// Index of the device that sends it.
    pub device: usize,
    pub kind: Kind,
}

/// Every request of a run, in order. Devices take turns in an order drawn
/// from the seed, so each device sends every `devices`-th request: the load
/// is spread evenly, and a device's runs are as far apart as they can be.
#[derive(Debug, Clone)]
pub struct Plan {
    pacing: Pacing,
    total: u64,
    order: Vec<usize>,
    heartbeat_share: f64,
    rng: ChaCha8Rng,
    next: u64,
}

impl Plan {
    /// The requests due within `duration` at `pacing`, from `devices`
    /// devices, a share `heartbeat_share` (from 0 to 1) of them unchanged.
    pub fn new(
        seed: u64,
        devices: usize,
        pacing: Pacing,
        duration: Duration,
        heartbeat_share: f64,
    ) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..devices).collect();
        order.shuffle(&mut rng);
        Plan {
            pacing,
            total: if devices == 0 {
                0
            } else {
                pacing.count_within(duration)
            },
            order,
            heartbeat_share: heartbeat_share.clamp(0.0, 1.0),
            rng,
            next: 0,
        }
    }

    /// How many requests the plan holds in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many are still to come.
    pub fn remaining(&self) -> u64 {
        self.total - self.next
    }
}

impl Iterator for Plan {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        if self.next >= self.total {
            return None;
        }
        let number = self.next;
        self.next += 1;
        let turn = usize::try_from(number % self.order.len() as u64).unwrap_or(0);
        let kind = if self.rng.gen_bool(self.heartbeat_share) {
            Kind::Heartbeat
        } else {
            Kind::Full
        };
        Some(Slot {
            number,
            due: self.pacing.due(number),
            device: self.order[turn],
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spaces_requests_evenly_and_counts_those_due_before_the_end() {
        let pacing = Pacing::new(500.0).unwrap();
        assert_eq!(pacing.due(0), Duration::ZERO);
        assert_eq!(pacing.due(1), Duration::from_millis(2));
        assert_eq!(pacing.due(500), Duration::from_secs(1));
        assert_eq!(pacing.count_within(Duration::from_secs(2)), 1000);
        assert_eq!(pacing.count_within(Duration::from_micros(2001)), 2);
        assert_eq!(pacing.count_within(Duration::ZERO), 0);
        for (rate, duration) in [(3.0, 1.0), (1234.5, 2.5), (0.5, 7.0), (7000.0, 30.0)] {
            let pacing = Pacing::new(rate).unwrap();
            let duration = Duration::from_secs_f64(duration);
            let count = pacing.count_within(duration);
            assert!(
                pacing.due(count - 1) < duration,
                "{rate}/s: request {} is due within {duration:?}",
                count - 1
            );
            assert!(
                pacing.due(count) >= duration,
                "{rate}/s: request {count} is due after {duration:?}"
            );
        }
    }

    #[test]
    fn pacing_refuses_a_rate_that_is_not_positive() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Pacing::new(rate), None, "{rate}");
        }
    }

    #[test]
    fn a_plan_takes_turns_over_every_device_and_keeps_the_heartbeat_share() {
        let pacing = Pacing::new(1000.0).unwrap();
        let plan = Plan::new(7, 40, pacing, Duration::from_secs(10), 0.8);
        assert_eq!(plan.total(), 10_000);
        let slots: Vec<Slot> = plan.collect();
        assert_eq!(slots.len(), 10_000);
        let mut per_device = [0u32; 40];
        for (number, slot) in slots.iter().enumerate() {
            assert_eq!(slot.number, number as u64);
            assert_eq!(slot.due, pacing.due(slot.number));
            per_device[slot.device] += 1;
        }
        assert!(
            per_device.iter().all(|count| *count == 250),
            "{per_device:?}"
        );
        // Each device's runs are exactly `devices` requests apart.
        for window in slots.windows(41) {
            assert_eq!(window[0].device, window[40].device);
            let between: Vec<usize> = window[1..40].iter().map(|slot| slot.device).collect();
            assert!(!between.contains(&window[0].device));
        }
        let heartbeats = slots
            .iter()
            .filter(|slot| slot.kind == Kind::Heartbeat)
            .count();
        assert!(
            (7_700..=8_300).contains(&heartbeats),
            "{heartbeats} heartbeats of 10,000 at a share of 0.8"
        );
    }

    #[test]
    fn a_plan_is_the_same_for_the_same_seed_and_differs_for_another() {
        let pacing = Pacing::new(100.0).unwrap();
        let plan =
            |seed| Plan::new(seed, 25, pacing, Duration::from_secs(3), 0.5).collect::<Vec<_>>();
        assert_eq!(plan(1), plan(1));
        assert_ne!(plan(1), plan(2));
    }

    #[test]
    fn the_extreme_shares_send_one_kind_only() {
        let pacing = Pacing::new(100.0).unwrap();
        let kinds = |share| {
            Plan::new(3, 5, pacing, Duration::from_secs(2), share)
                .map(|slot| slot.kind)
                .collect::<std::collections::HashSet<_>>()
        };
        assert_eq!(kinds(0.0), [Kind::Full].into());
        assert_eq!(kinds(1.0), [Kind::Heartbeat].into());
    }

    #[test]
    fn remaining_counts_down() {
        let pacing = Pacing::new(10.0).unwrap();
        let mut plan = Plan::new(1, 3, pacing, Duration::from_secs(1), 0.0);
        assert_eq!(plan.remaining(), 10);
        plan.by_ref().take(4).for_each(drop);
        assert_eq!(plan.remaining(), 6);
    }
}
