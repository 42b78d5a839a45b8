//! Installing rate-limit rules and reading the housekeeping counters.

use aya::maps::{Array, MapData, PerCpuArray};
use enforcer_common::{
    maps as m,
    ratelimit::{MAX_RATE_RULES, RateConfig, RateRule, active_word},
    stats::{STAT_SLOTS, stat_name},
};

use super::KernelError;

/// Rule and config maps of the rate limiter.
pub struct RateMaps {
    rules: Array<MapData, RateRule>,
    config: Array<MapData, RateConfig>,
    stats: PerCpuArray<MapData, u64>,
    hits: PerCpuArray<MapData, u64>,
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

impl RateMaps {
    pub(crate) fn new(ebpf: &mut aya::Ebpf) -> Result<Self, KernelError> {
        let take = |ebpf: &mut aya::Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(KernelError::MissingMap(name))
        };
        Ok(Self {
            rules: Array::try_from(take(ebpf, m::RATE_RULES)?).map_err(map_err(m::RATE_RULES))?,
            config: Array::try_from(take(ebpf, m::RATE_CONFIG)?)
                .map_err(map_err(m::RATE_CONFIG))?,
            stats: PerCpuArray::try_from(take(ebpf, m::STATS)?).map_err(map_err(m::STATS))?,
            hits: PerCpuArray::try_from(take(ebpf, m::RATE_HITS)?)
                .map_err(map_err(m::RATE_HITS))?,
        })
    }

    /// Installs `rules` in the half of the rule array not in use, then makes
    /// it live with one write: packets see the old set or the new, never a mix.
    pub fn install(
        &mut self,
        rules: &[RateRule],
        event_interval_ns: u64,
    ) -> Result<(), KernelError> {
        assert!(
            rules.len() <= MAX_RATE_RULES as usize,
            "validated by the config"
        );
        let current = self.config.get(&0, 0).map_err(map_err(m::RATE_CONFIG))?;
        let half = if current.active >> 16 == 0 { 1 } else { 0 };
        // The half being written starts its hit counters from zero (a new
        // rule set is a counter reset for the metrics).
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Write(m::RATE_HITS, e))?;
        for i in 0..MAX_RATE_RULES {
            self.hits
                .set(
                    half * MAX_RATE_RULES + i,
                    aya::maps::PerCpuValues::try_from(vec![0u64; cpus])
                        .map_err(|e| KernelError::Write(m::RATE_HITS, e))?,
                    0,
                )
                .map_err(map_err(m::RATE_HITS))?;
        }
        for (i, r) in rules.iter().enumerate() {
            self.rules
                .set(half * MAX_RATE_RULES + i as u32, r, 0)
                .map_err(map_err(m::RATE_RULES))?;
        }
        self.config
            .set(
                0,
                RateConfig {
                    active: active_word(half, rules.len() as u32),
                    _pad: 0,
                    event_interval_ns,
                },
                0,
            )
            .map_err(map_err(m::RATE_CONFIG))
    }

    /// Packets over each live rule's limit, in rule order, summed over CPUs.
    pub fn rule_hits(&self) -> Result<Vec<u64>, KernelError> {
        let cfg = self.config.get(&0, 0).map_err(map_err(m::RATE_CONFIG))?;
        let half = cfg.active >> 16 & 1;
        let count = cfg.active & 0xFFFF;
        (0..count.min(MAX_RATE_RULES))
            .map(|i| {
                self.hits
                    .get(&(half * MAX_RATE_RULES + i), 0)
                    .map(|v| v.iter().sum())
                    .map_err(map_err(m::RATE_HITS))
            })
            .collect()
    }

    /// The housekeeping counters, summed over CPUs: (name, value).
    pub fn stats(&self) -> Result<Vec<(&'static str, u64)>, KernelError> {
        let mut out = Vec::new();
        for slot in 0..STAT_SLOTS {
            let Some(name) = stat_name(slot) else {
                continue;
            };
            let v = self.stats.get(&slot, 0).map_err(map_err(m::STATS))?;
            out.push((name, v.iter().sum()));
        }
        Ok(out)
    }
}
