//! Installing HTTP ports, routes and response settings, and reading the
//! per-route and per-status counters.
//!
//! Routes are double-buffered like the rate-limit rules: the agent fills the
//! trie not in use, then flips `HTTP_CONFIG.active` in one write, so a packet
//! is matched against the old route set or the new one, never a mix.

use aya::maps::{Array, LpmTrie, MapData, PerCpuArray, PerCpuValues, lpm_trie::Key};
use enforcer_common::{
    http::STATUS_CLASSES,
    maps as m,
    route::{HttpConfig as KernelHttp, MAX_ROUTES, ROUTE_KEY_DATA, RouteValue},
};

use super::KernelError;
use crate::config::HttpConfig;

/// Words of the port bitmap (one bit per TCP port).
const PORT_WORDS: u32 = 65_536 / 64;

type RouteTrie = LpmTrie<MapData, [u8; ROUTE_KEY_DATA], RouteValue>;

/// Requests matched and requests over the limit, for one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCount {
    pub requests: u64,
    pub over: u64,
}

/// The HTTP maps.
pub struct HttpMaps {
    ports: Array<MapData, u64>,
    config: Array<MapData, KernelHttp>,
    tries: [RouteTrie; 2],
    reqs: PerCpuArray<MapData, u64>,
    over: PerCpuArray<MapData, u64>,
    responses: PerCpuArray<MapData, u64>,
    /// Routes in the live half.
    live: u32,
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

fn take(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<aya::maps::Map, KernelError> {
    ebpf.take_map(name).ok_or(KernelError::MissingMap(name))
}

impl HttpMaps {
    pub(crate) fn new(ebpf: &mut aya::Ebpf) -> Result<Self, KernelError> {
        let trie = |ebpf: &mut aya::Ebpf, name: &'static str| {
            RouteTrie::try_from(take(ebpf, name)?).map_err(map_err(name))
        };
        let mut maps = Self {
            ports: Array::try_from(take(ebpf, m::HTTP_PORTS)?).map_err(map_err(m::HTTP_PORTS))?,
            config: Array::try_from(take(ebpf, m::HTTP_CONFIG)?)
                .map_err(map_err(m::HTTP_CONFIG))?,
            tries: [trie(ebpf, m::ROUTES0)?, trie(ebpf, m::ROUTES1)?],
            reqs: PerCpuArray::try_from(take(ebpf, m::ROUTE_REQS)?)
                .map_err(map_err(m::ROUTE_REQS))?,
            over: PerCpuArray::try_from(take(ebpf, m::ROUTE_OVER)?)
                .map_err(map_err(m::ROUTE_OVER))?,
            responses: PerCpuArray::try_from(take(ebpf, m::RESP_COUNTS)?)
                .map_err(map_err(m::RESP_COUNTS))?,
            live: 0,
        };
        // Reused pins: the live half's routes are as many as its trie holds.
        let half = maps.live_half()?;
        maps.live = maps.tries[half as usize].keys().count() as u32;
        Ok(maps)
    }

    fn live_half(&self) -> Result<u32, KernelError> {
        let cfg = self.config.get(&0, 0).map_err(map_err(m::HTTP_CONFIG))?;
        Ok((cfg.active >> 16) & 1)
    }

    /// Makes `http` live: ports, then routes in the idle half, then one
    /// write of the config that flips to it.
    pub fn install(&mut self, http: &HttpConfig, resp_batch: u32) -> Result<(), KernelError> {
        assert!(
            http.routes.len() <= MAX_ROUTES as usize,
            "validated by the config"
        );
        self.install_ports(&http.ports)?;
        let half = 1 - self.live_half()?;
        let trie = &mut self.tries[half as usize];
        // Empty the idle trie (it holds the route set before last).
        let old: Vec<_> = trie.keys().filter_map(Result::ok).collect();
        for k in old {
            trie.remove(&k).map_err(map_err(m::ROUTES0))?;
        }
        let compiled = crate::config::routes::compile(&http.routes, MAX_ROUTES as usize);
        for (data, bits, value) in &compiled.entries {
            trie.insert(&Key::new(*bits, *data), *value, 0)
                .map_err(map_err(m::ROUTES0))?;
        }
        // The half being filled starts its counters from zero.
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Write(m::ROUTE_REQS, e))?;
        let zero = || {
            PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| KernelError::Write(m::ROUTE_REQS, e))
        };
        for i in 0..http.routes.len() as u32 {
            let slot = half * MAX_ROUTES + i;
            self.reqs
                .set(slot, zero()?, 0)
                .map_err(map_err(m::ROUTE_REQS))?;
            self.over
                .set(slot, zero()?, 0)
                .map_err(map_err(m::ROUTE_OVER))?;
        }
        self.config
            .set(
                0,
                KernelHttp {
                    active: (half << 16) | compiled.active_bits,
                    sample_every: http.sample_every,
                    report_interval_ns: http.report_interval.as_nanos() as u64,
                    resp_v4_len: u32::from(http.response_ipv4_prefix),
                    resp_v6_len: u32::from(http.response_ipv6_prefix),
                    resp_batch,
                    method_bits: compiled.method_bits,
                    host_bits: compiled.host_bits,
                },
                0,
            )
            .map_err(map_err(m::HTTP_CONFIG))?;
        self.live = http.routes.len() as u32;
        Ok(())
    }

    /// Writes the words of the port bitmap that change.
    fn install_ports(&mut self, ports: &[u16]) -> Result<(), KernelError> {
        let mut want = vec![0u64; PORT_WORDS as usize];
        for &p in ports {
            want[usize::from(p >> 6)] |= 1 << (p & 63);
        }
        for (i, w) in want.iter().enumerate() {
            let i = i as u32;
            let have = self.ports.get(&i, 0).map_err(map_err(m::HTTP_PORTS))?;
            if have != *w {
                self.ports.set(i, *w, 0).map_err(map_err(m::HTTP_PORTS))?;
            }
        }
        Ok(())
    }

    /// Requests and requests over the limit per live route, in route order.
    pub fn route_counts(&self) -> Result<Vec<RouteCount>, KernelError> {
        let half = self.live_half()?;
        (0..self.live.min(MAX_ROUTES))
            .map(|i| {
                let slot = half * MAX_ROUTES + i;
                let sum = |a: &PerCpuArray<MapData, u64>, name| {
                    a.get(&slot, 0)
                        .map(|v| v.iter().sum())
                        .map_err(map_err(name))
                };
                Ok(RouteCount {
                    requests: sum(&self.reqs, m::ROUTE_REQS)?,
                    over: sum(&self.over, m::ROUTE_OVER)?,
                })
            })
            .collect()
    }

    /// Responses seen per status class (`http::STATUS_*` order).
    pub fn response_counts(&self) -> Result<Vec<u64>, KernelError> {
        (0..STATUS_CLASSES)
            .map(|c| {
                self.responses
                    .get(&c, 0)
                    .map(|v| v.iter().sum())
                    .map_err(map_err(m::RESP_COUNTS))
            })
            .collect()
    }
}
