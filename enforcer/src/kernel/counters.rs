//! Reading the per-CPU verdict counters, summed across CPUs at read time.

use aya::maps::{MapData, PerCpuArray};
use enforcer_common::counters::{COUNTER_ENTRIES, Counter, REASON_SLOTS, Verdict, reason_name};

use super::KernelError;

/// One non-empty (verdict, reason) total.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CounterTotal {
    pub verdict: String,
    pub reason: String,
    pub packets: u64,
    pub bytes: u64,
}

/// The counter table of a loaded program.
pub struct Counters {
    map: PerCpuArray<MapData, Counter>,
}

impl Counters {
    pub(crate) fn new(ebpf: &mut aya::Ebpf) -> Result<Self, KernelError> {
        let name = enforcer_common::maps::COUNTERS;
        let map = ebpf.take_map(name).ok_or(KernelError::MissingMap(name))?;
        let map = PerCpuArray::try_from(map).map_err(|source| KernelError::Map { name, source })?;
        Ok(Self { map })
    }

    /// Every (verdict, reason) slot with a non-zero count, summed over CPUs.
    pub fn totals(&self) -> Result<Vec<CounterTotal>, KernelError> {
        let mut out = Vec::new();
        for idx in 0..COUNTER_ENTRIES {
            let per_cpu = self.map.get(&idx, 0).map_err(|source| KernelError::Map {
                name: enforcer_common::maps::COUNTERS,
                source,
            })?;
            let (packets, bytes) = per_cpu
                .iter()
                .fold((0u64, 0u64), |(p, b), c| (p + c.packets, b + c.bytes));
            if packets == 0 {
                continue;
            }
            let verdict = Verdict::ALL[(idx / REASON_SLOTS) as usize];
            let reason = reason_name(idx % REASON_SLOTS).unwrap_or("unknown");
            out.push(CounterTotal {
                verdict: verdict.name().to_owned(),
                reason: reason.to_owned(),
                packets,
                bytes,
            });
        }
        Ok(out)
    }
}
