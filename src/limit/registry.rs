//! [`Zones`]: every rate-limit zone in force, carried from one config
//! generation to the next, and their series.
//!
//! A reload asks for each zone by name and [`ZoneParams`]; a zone that a
//! generation in force already has with the same parameters is handed
//! back as it is, state and all, so a reload that leaves a zone alone
//! does not forgive its clients. The registry holds zones weakly: a zone
//! lives as long as a generation's routes use it, and the sweep (the
//! `limits` actor) covers exactly those.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::zone::{Zone, ZoneParams, ZoneSeries};
use crate::kept::Kept;

/// How often idle keys are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Every zone in force, and the series they count into.
#[derive(Debug)]
pub struct Zones {
    live: Kept<Zone>,
    keys: IntGaugeVec,
    requests: IntCounterVec,
}

impl Default for Zones {
    /// A registry whose series are exported once [`Zones::register`]ed:
    /// `troupe_rate_limit_keys{zone}` and
    /// `troupe_rate_limit_requests_total{zone, outcome}` (`delayed`,
    /// `refused`, `dry_run`: would have been refused, `overflow`: a new
    /// key past the zone's cap).
    fn default() -> Self {
        let keys = IntGaugeVec::new(
            Opts::new("troupe_rate_limit_keys", "Keys a rate-limit zone keeps"),
            &["zone"],
        )
        .expect("valid series");
        let requests = IntCounterVec::new(
            Opts::new(
                "troupe_rate_limit_requests_total",
                "Requests a rate-limit zone delayed, refused or would have refused",
            ),
            &["zone", "outcome"],
        )
        .expect("valid series");
        Self {
            live: Kept::default(),
            keys,
            requests,
        }
    }
}

impl Zones {
    /// Exports the series from `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.keys.clone()))?;
        registry.register(Box::new(self.requests.clone()))
    }

    pub(super) fn series(&self, zone: &str) -> ZoneSeries {
        let outcome = |o: &str| self.requests.with_label_values(&[zone, o]);
        ZoneSeries {
            keys: self.keys.with_label_values(&[zone]),
            delayed: outcome("delayed"),
            refused: outcome("refused"),
            dry_run: outcome("dry_run"),
            overflow: outcome("overflow"),
        }
    }

    /// The zone `name` with `params`: the one in force if it has them,
    /// else a new one.
    pub fn zone(&self, name: &str, params: ZoneParams) -> Arc<Zone> {
        self.live.get_or(name, &params, || {
            Zone::new(name, params.clone(), self.series(name))
        })
    }

    /// The zones in force.
    pub fn live(&self) -> Vec<Arc<Zone>> {
        self.live.live()
    }
}

/// The `limits` actor sweeps the zones through this seam.
impl troupe_actors::Sweep for Zones {
    fn every(&self) -> Duration {
        SWEEP_EVERY
    }

    /// Forgets every zone's idle keys and refreshes its key gauge.
    fn sweep(&self) {
        let now = Instant::now();
        for zone in self.live() {
            zone.sweep(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::zone::KeyKind;

    fn params(secs: u64) -> ZoneParams {
        ZoneParams {
            period: Duration::from_secs(secs),
            key: KeyKind::Route,
            max_keys: 10,
        }
    }

    #[test]
    fn a_zone_in_force_is_kept_while_its_parameters_are() {
        let zones = Zones::default();
        let a = zones.zone("a", params(1));
        assert!(Arc::ptr_eq(&a, &zones.zone("a", params(1))));
        // New parameters: a new zone; the old one lives while used.
        let b = zones.zone("a", params(2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(zones.live().len(), 2);
        drop(a);
        assert_eq!(zones.live().len(), 1);
    }
}
