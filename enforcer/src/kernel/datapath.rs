//! Loading the object (reusing pinned maps), attaching XDP, and pinning links.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    EbpfLoader,
    programs::{
        SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkOrder, PinnedLink},
        tc::{SchedClassifierLink, SchedClassifierLinkId, TcAttachOptions, qdisc_add_clsact},
        xdp::XdpLink,
    },
};
use enforcer_common::maps as m;
use tracing::{info, warn};

use super::{
    KernelError, counters::Counters, http::HttpMaps, object, prefix_maps::PrefixMaps,
    ratelimit::RateMaps,
};

/// Name of the XDP program in the object.
pub const XDP_PROGRAM: &str = "enforcer";
/// Name of the TC egress program (HTTP responses) in the object.
pub const TC_PROGRAM: &str = "responses";

/// How the operator asked XDP to be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeChoice {
    /// Native (driver) mode only: fail if the driver cannot.
    #[default]
    Native,
    /// Generic (skb) mode: works everywhere, after the stack allocated an skb.
    Generic,
    /// Native, falling back to generic with a loud warning.
    Auto,
}

/// The mode an interface ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachedMode {
    Native,
    Generic,
    /// Reused from a pinned link of an earlier agent whose mode is not recorded.
    Unknown,
}

impl AttachedMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Unknown => "unknown",
        }
    }
}

/// One interface the program is attached to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub iface: String,
    pub mode: AttachedMode,
    /// True when the link is pinned (enforcement survives the agent).
    pub pinned: bool,
    /// True when an earlier agent's link was taken over without a gap.
    pub took_over: bool,
    /// True when the mode is degraded from what was asked (auto → generic).
    pub degraded: bool,
}

/// Sizes and pin location for [`Datapath::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// bpffs directory for pins; `None` loads unpinned (tests, benchmarks).
    pub pin_root: Option<PathBuf>,
    pub block_v4_capacity: u32,
    pub block_v6_capacity: u32,
    pub allow_capacity: u32,
    /// Rate-limit state keys (LRU).
    pub rate_state_capacity: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            pin_root: None,
            block_v4_capacity: m::DEFAULT_BLOCK_V4_ENTRIES,
            block_v6_capacity: m::DEFAULT_BLOCK_V6_ENTRIES,
            allow_capacity: m::DEFAULT_ALLOW_ENTRIES,
            rate_state_capacity: m::DEFAULT_RATE_STATE_ENTRIES,
        }
    }
}

/// The loaded program, its maps and its attachments.
pub struct Datapath {
    ebpf: aya::Ebpf,
    pin_root: Option<PathBuf>,
    pub maps: PrefixMaps,
    pub counters: Counters,
    pub rate: RateMaps,
    pub http: HttpMaps,
    /// The ring buffer of events, for the agent to take.
    pub events: Option<aya::maps::RingBuf<aya::maps::MapData>>,
    /// True when maps were reused from pins (their contents were adopted).
    pub reused_pins: bool,
    pub attachments: Vec<Attachment>,
    /// Links owned only by this process (no pin root): detached on drop.
    unpinned_links: Vec<(String, aya::programs::xdp::XdpLinkId)>,
    unpinned_tc: Vec<(String, SchedClassifierLinkId)>,
}

impl Datapath {
    /// Loads and verifies the program. With a pin root, maps already pinned
    /// there are reused with their contents, and new ones are pinned.
    pub fn load(opts: &LoadOptions) -> Result<Self, KernelError> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(m::BLOCK_V4, opts.block_v4_capacity)
            .map_max_entries(m::BLOCK_V6, opts.block_v6_capacity)
            .map_max_entries(m::ALLOW_V4, opts.allow_capacity)
            .map_max_entries(m::ALLOW_V6, opts.allow_capacity)
            .map_max_entries(m::RATE_STATE, opts.rate_state_capacity);
        let mut reused = false;
        let mut pin_paths = Vec::new();
        if let Some(root) = &opts.pin_root {
            let maps_dir = root.join("maps");
            fs::create_dir_all(&maps_dir).map_err(|source| KernelError::Bpffs {
                path: maps_dir.display().to_string(),
                source,
            })?;
            for name in m::PINNED {
                let path = maps_dir.join(name);
                reused |= path.exists();
                pin_paths.push((name, path));
            }
        }
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(object::ENFORCER)
            .map_err(|e| KernelError::Load(Box::new(e)))?;
        check_layouts(&ebpf, &pin_paths)?;
        let prog: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or(KernelError::MissingMap(XDP_PROGRAM))?
            .try_into()
            .map_err(|e| KernelError::Program {
                name: XDP_PROGRAM,
                source: Box::new(e),
            })?;
        prog.load().map_err(|e| KernelError::Program {
            name: XDP_PROGRAM,
            source: Box::new(e),
        })?;
        let tc: &mut SchedClassifier = ebpf
            .program_mut(TC_PROGRAM)
            .ok_or(KernelError::MissingMap(TC_PROGRAM))?
            .try_into()
            .map_err(|e| KernelError::Program {
                name: TC_PROGRAM,
                source: Box::new(e),
            })?;
        tc.load().map_err(|e| KernelError::Program {
            name: TC_PROGRAM,
            source: Box::new(e),
        })?;
        let capacity = |ebpf: &aya::Ebpf, name: &str, dflt: u32| {
            ebpf.map(name)
                .and_then(|mp| match mp {
                    aya::maps::Map::HashMap(d) | aya::maps::Map::LpmTrie(d) => d.info().ok(),
                    _ => None,
                })
                .map_or(dflt, |i| i.max_entries()) as usize
        };
        let cap_v4 = capacity(&ebpf, m::BLOCK_V4, opts.block_v4_capacity);
        let cap_v6 = capacity(&ebpf, m::BLOCK_V6, opts.block_v6_capacity);
        let cap_allow = capacity(&ebpf, m::ALLOW_V4, opts.allow_capacity);
        if reused && cap_v4 != opts.block_v4_capacity as usize {
            warn!(
                pinned = cap_v4,
                configured = opts.block_v4_capacity,
                "the pinned IPv4 blocklist keeps its capacity; a new capacity takes effect after \
                 `enforcer uninstall`"
            );
        }
        let maps = PrefixMaps::new(&mut ebpf, cap_v4, cap_v6, cap_allow)?;
        let counters = Counters::new(&mut ebpf)?;
        let rate = RateMaps::new(&mut ebpf)?;
        let http = HttpMaps::new(&mut ebpf)?;
        let events = ebpf
            .take_map(m::EVENTS)
            .ok_or(KernelError::MissingMap(m::EVENTS))?;
        let events = aya::maps::RingBuf::try_from(events).map_err(|source| KernelError::Map {
            name: m::EVENTS,
            source,
        })?;
        Ok(Self {
            ebpf,
            pin_root: opts.pin_root.clone(),
            maps,
            counters,
            rate,
            http,
            events: Some(events),
            reused_pins: reused,
            attachments: Vec::new(),
            unpinned_links: Vec::new(),
            unpinned_tc: Vec::new(),
        })
    }

    /// The loaded XDP program (for BPF_PROG_TEST_RUN in tests and benchmarks).
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(XDP_PROGRAM)
            .and_then(|p| <&Xdp>::try_from(p).ok())
            .expect("the XDP program was loaded in Datapath::load")
    }

    fn program_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(XDP_PROGRAM)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
            .expect("the XDP program was loaded in Datapath::load")
    }

    fn link_pin(&self, iface: &str) -> Option<PathBuf> {
        self.pin_root
            .as_ref()
            .map(|r| r.join("links").join(format!("xdp-{iface}")))
    }

    fn tc_pin(&self, iface: &str) -> Option<PathBuf> {
        self.pin_root
            .as_ref()
            .map(|r| r.join("links").join(format!("tc-{iface}")))
    }

    /// The loaded TC egress program (for BPF_PROG_TEST_RUN in tests).
    pub fn responses_program(&self) -> &SchedClassifier {
        self.ebpf
            .program(TC_PROGRAM)
            .and_then(|p| <&SchedClassifier>::try_from(p).ok())
            .expect("the TC program was loaded in Datapath::load")
    }

    fn tc_mut(&mut self) -> &mut SchedClassifier {
        self.ebpf
            .program_mut(TC_PROGRAM)
            .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
            .expect("the TC program was loaded in Datapath::load")
    }

    /// Attaches the response observer to `iface`'s egress: a TCX link, pinned
    /// like the XDP link and taken over the same way by a restarted agent;
    /// on kernels without TCX (before 6.6), a clsact filter owned by this
    /// process.
    fn attach_tc(&mut self, iface: &str) -> Result<bool, KernelError> {
        let attach_err = |message: String| KernelError::Attach {
            iface: iface.to_owned(),
            message,
        };
        let pin = self.tc_pin(iface);
        if let Some(pin) = pin.as_ref().filter(|p| p.exists()) {
            let taken = PinnedLink::from_pin(pin)
                .map_err(|e| e.to_string())
                .and_then(|l| {
                    SchedClassifierLink::try_from(FdLink::from(l)).map_err(|e| e.to_string())
                })
                .and_then(|l| self.tc_mut().attach_to_link(l).map_err(|e| e.to_string()));
            match taken {
                Ok(_) => return Ok(true),
                Err(e) => {
                    warn!(iface, error = %e, "could not take over the pinned TC link; re-attaching");
                    let _ = fs::remove_file(pin);
                }
            }
        }
        let id = match self.tc_mut().attach_with_options(
            iface,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        ) {
            Ok(id) => id,
            Err(tcx) => {
                warn!(
                    iface,
                    error = %tcx,
                    "DEGRADED: no TCX on this kernel; the response observer uses a clsact filter \
                     that detaches when the agent exits"
                );
                // An existing clsact qdisc is fine.
                let _ = qdisc_add_clsact(iface);
                let id = self
                    .tc_mut()
                    .attach(iface, TcAttachType::Egress)
                    .map_err(|e| attach_err(format!("attaching the TC egress program: {e}")))?;
                self.unpinned_tc.push((iface.to_owned(), id));
                return Ok(false);
            }
        };
        let Some(pin) = pin else {
            self.unpinned_tc.push((iface.to_owned(), id));
            return Ok(false);
        };
        let link = self
            .tc_mut()
            .take_link(id)
            .map_err(|e| attach_err(format!("taking the TC link: {e}")))?;
        let fd_link = FdLink::try_from(link)
            .map_err(|e| attach_err(format!("the TCX link is not a bpf_link: {e}")))?;
        if let Some(dir) = pin.parent() {
            fs::create_dir_all(dir).map_err(|source| KernelError::Bpffs {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pinned = fd_link
            .pin(&pin)
            .map_err(|e| attach_err(format!("pinning the TC link at {}: {e}", pin.display())))?;
        let link = SchedClassifierLink::try_from(FdLink::from(pinned))
            .map_err(|e| attach_err(format!("re-wrapping the pinned TC link: {e}")))?;
        self.tc_mut()
            .attach_to_link(link)
            .map_err(|e| attach_err(format!("re-owning the pinned TC link: {e}")))?;
        Ok(true)
    }

    /// Attaches to `iface`. With pins, an earlier agent's link on the same
    /// interface is taken over atomically; otherwise a new link is made and pinned.
    pub fn attach(
        &mut self,
        iface: &str,
        choice: XdpModeChoice,
        previous_mode: Option<AttachedMode>,
    ) -> Result<Attachment, KernelError> {
        let attach_err = |message: String| KernelError::Attach {
            iface: iface.to_owned(),
            message,
        };
        let pin = self.link_pin(iface);
        if let Some(pin) = pin.as_ref().filter(|p| p.exists()) {
            let wanted_matches = !matches!(
                (choice, previous_mode),
                (XdpModeChoice::Native, Some(AttachedMode::Generic))
                    | (XdpModeChoice::Generic, Some(AttachedMode::Native))
            );
            if wanted_matches {
                let link = PinnedLink::from_pin(pin).map_err(|e| {
                    attach_err(format!("reading pinned link {}: {e}", pin.display()))
                })?;
                let fd_link: FdLink = link.into();
                let xdp_link = XdpLink::try_from(fd_link)
                    .map_err(|e| attach_err(format!("pinned link is not an XDP link: {e}")))?;
                self.program_mut().attach_to_link(xdp_link).map_err(|e| {
                    attach_err(format!("replacing the program in the pinned link: {e}"))
                })?;
                let a = Attachment {
                    iface: iface.to_owned(),
                    mode: previous_mode.unwrap_or(AttachedMode::Unknown),
                    pinned: true,
                    took_over: true,
                    degraded: previous_mode == Some(AttachedMode::Generic)
                        && choice != XdpModeChoice::Generic,
                };
                info!(
                    iface,
                    mode = a.mode.name(),
                    "took over the pinned XDP link without a gap"
                );
                self.attach_tc(iface)?;
                self.attachments.push(a.clone());
                return Ok(a);
            }
            warn!(
                iface,
                "the pinned XDP link is in another mode than asked; re-attaching (brief gap)"
            );
            let _ = fs::remove_file(pin);
        }
        let (mode, degraded, link_id) = match choice {
            XdpModeChoice::Native => (
                AttachedMode::Native,
                false,
                self.program_mut()
                    .attach(iface, XdpMode::Driver)
                    .map_err(|e| {
                        attach_err(format!(
                            "native XDP attach failed: {e}. If the driver has no native XDP, use \
                         --xdp-mode auto (falls back to generic) or --xdp-mode generic"
                        ))
                    })?,
            ),
            XdpModeChoice::Generic => (
                AttachedMode::Generic,
                false,
                self.program_mut()
                    .attach(iface, XdpMode::Skb)
                    .map_err(|e| attach_err(format!("generic XDP attach failed: {e}")))?,
            ),
            XdpModeChoice::Auto => {
                match self.program_mut().attach(iface, XdpMode::Driver) {
                    Ok(id) => (AttachedMode::Native, false, id),
                    Err(native_err) => {
                        warn!(
                            iface,
                            error = %native_err,
                            "DEGRADED: native XDP is not available on this interface; falling back \
                             to generic XDP, which runs after the kernel allocated an skb and costs \
                             several times more per packet"
                        );
                        let id = self
                        .program_mut()
                        .attach(iface, XdpMode::Skb)
                        .map_err(|e| attach_err(format!(
                            "native XDP failed ({native_err}) and generic XDP failed too: {e}"
                        )))?;
                        (AttachedMode::Generic, true, id)
                    }
                }
            }
        };
        let mut pinned = false;
        let mut owned = None;
        if let Some(pin) = pin {
            let link = self
                .program_mut()
                .take_link(link_id)
                .map_err(|e| attach_err(format!("taking the new link: {e}")))?;
            match FdLink::try_from(link) {
                Ok(fd_link) => {
                    if let Some(dir) = pin.parent() {
                        fs::create_dir_all(dir).map_err(|source| KernelError::Bpffs {
                            path: dir.display().to_string(),
                            source,
                        })?;
                    }
                    let pinned_link = fd_link.pin(&pin).map_err(|e| {
                        attach_err(format!("pinning the link at {}: {e}", pin.display()))
                    })?;
                    // Keep the link alive through the program for this process;
                    // the pin keeps it alive after.
                    let fd_link: FdLink = pinned_link.into();
                    let xdp_link = XdpLink::try_from(fd_link)
                        .map_err(|e| attach_err(format!("re-wrapping the pinned link: {e}")))?;
                    self.program_mut()
                        .attach_to_link(xdp_link)
                        .map_err(|e| attach_err(format!("re-owning the pinned link: {e}")))?;
                    pinned = true;
                }
                Err(_) => {
                    // Converting consumed (and so detached) the netlink
                    // attachment: attach again and keep it owned.
                    warn!(
                        iface,
                        "DEGRADED: this kernel attached XDP through netlink, not a bpf_link: the \
                         program cannot be pinned and detaches when the agent exits"
                    );
                    let xdp_mode = match mode {
                        AttachedMode::Generic => XdpMode::Skb,
                        _ => XdpMode::Driver,
                    };
                    owned = Some(
                        self.program_mut()
                            .attach(iface, xdp_mode)
                            .map_err(|e| attach_err(format!("re-attaching: {e}")))?,
                    );
                }
            }
        } else {
            owned = Some(link_id);
        }
        if let Some(id) = owned {
            self.unpinned_links.push((iface.to_owned(), id));
        }
        let a = Attachment {
            iface: iface.to_owned(),
            mode,
            pinned,
            took_over: false,
            degraded,
        };
        let tc_pinned = self.attach_tc(iface)?;
        info!(
            iface,
            mode = mode.name(),
            pinned,
            tc_pinned,
            "attached XDP and TC egress"
        );
        self.attachments.push(a.clone());
        Ok(a)
    }

    /// Detaches from `iface` (and removes its link pin): enforcement stops there.
    pub fn detach(&mut self, iface: &str) -> Result<(), KernelError> {
        if let Some(pin) = self.link_pin(iface) {
            let _ = fs::remove_file(pin);
        }
        if let Some(pin) = self.tc_pin(iface) {
            let _ = fs::remove_file(pin);
        }
        for (name, id) in std::mem::take(&mut self.unpinned_tc) {
            if name == iface {
                let _ = self.tc_mut().detach(id);
            } else {
                self.unpinned_tc.push((name, id));
            }
        }
        let mut rest = Vec::new();
        for (name, id) in std::mem::take(&mut self.unpinned_links) {
            if name == iface {
                self.program_mut()
                    .detach(id)
                    .map_err(|e| KernelError::Attach {
                        iface: iface.to_owned(),
                        message: format!("detaching: {e}"),
                    })?;
            } else {
                rest.push((name, id));
            }
        }
        self.unpinned_links = rest;
        self.attachments.retain(|a| a.iface != iface);
        Ok(())
    }
}

/// A loaded datapath taken apart for the agent's tasks.
pub struct Parts {
    pub programs: Programs,
    pub maps: PrefixMaps,
    pub counters: Counters,
    pub rate: RateMaps,
    pub http: HttpMaps,
    pub events: Option<aya::maps::RingBuf<aya::maps::MapData>>,
}

/// The loaded programs and their links: dropping this detaches unpinned links.
pub struct Programs {
    _ebpf: aya::Ebpf,
    pub attachments: Vec<Attachment>,
}

impl Datapath {
    /// Separates the program (to keep alive), the prefix maps (for the decision
    /// store, their single writer) and the counters (read at scrape time).
    pub fn split(self) -> Parts {
        Parts {
            programs: Programs {
                _ebpf: self.ebpf,
                attachments: self.attachments,
            },
            maps: self.maps,
            counters: self.counters,
            rate: self.rate,
            http: self.http,
            events: self.events,
        }
    }
}

/// Refuses pinned maps whose layout differs from this build's: the verifier
/// would reject the program, or worse, accept it and misread the entries.
fn check_layouts(ebpf: &aya::Ebpf, pins: &[(&'static str, PathBuf)]) -> Result<(), KernelError> {
    for (name, path) in pins {
        let Some(map) = ebpf.map(name) else { continue };
        let data = map_data(map);
        let Some(info) = data.and_then(|d| d.info().ok()) else {
            continue;
        };
        let (k, v) = expected_sizes(name);
        if (k, v) == (0, 0) {
            continue;
        }
        if info.key_size() != k || info.value_size() != v {
            return Err(KernelError::PinnedLayout {
                name,
                path: path.display().to_string(),
                found: format!("key {} B, value {} B", info.key_size(), info.value_size()),
                expected: format!("key {k} B, value {v} B"),
            });
        }
    }
    Ok(())
}

fn map_data(map: &aya::maps::Map) -> Option<&aya::maps::MapData> {
    use aya::maps::Map;
    match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::LpmTrie(d)
        | Map::PerCpuArray(d) => Some(d),
        _ => None,
    }
}

fn expected_sizes(name: &str) -> (u32, u32) {
    use enforcer_common::{blocklist::*, counters::Counter, prefix::V6LengthMask};
    use std::mem::size_of;
    let s = |n: usize| n as u32;
    match name {
        m::COUNTERS => (4, s(size_of::<Counter>())),
        m::ALLOW_V4 => (8, s(size_of::<AllowEntry>())),
        m::ALLOW_V6 => (20, s(size_of::<AllowEntry>())),
        m::BLOCK_V4 => (s(size_of::<PrefixKeyV4>()), s(size_of::<BlockEntry>())),
        m::BLOCK_V6 => (s(size_of::<PrefixKeyV6>()), s(size_of::<BlockEntry>())),
        m::BLOCK_V4_SUMMARY => (4, 8),
        m::BLOCK_V6_SUMMARY => (4, s(size_of::<V6LengthMask>())),
        m::BLOCK_V4_FILTER | m::BLOCK_V6_FILTER => (4, 8),
        m::RATE_RULES => (4, s(size_of::<enforcer_common::ratelimit::RateRule>())),
        m::RATE_CONFIG => (4, s(size_of::<enforcer_common::ratelimit::RateConfig>())),
        m::RATE_STATE => (
            s(size_of::<enforcer_common::ratelimit::RateKey>()),
            s(size_of::<enforcer_common::ratelimit::RateState>()),
        ),
        m::STATS
        | m::RATE_HITS
        | m::HTTP_PORTS
        | m::ROUTE_REQS
        | m::ROUTE_OVER
        | m::RESP_COUNTS => (4, 8),
        m::HTTP_CONFIG => (4, s(size_of::<enforcer_common::route::HttpConfig>())),
        m::ROUTES0 | m::ROUTES1 => (
            4 + s(enforcer_common::route::ROUTE_KEY_DATA),
            s(size_of::<enforcer_common::route::RouteValue>()),
        ),
        m::RESP_STATE => (
            s(size_of::<enforcer_common::route::RespKey>()),
            s(size_of::<enforcer_common::route::RespState>()),
        ),
        m::EVENTS => (0, 0),
        _ => (0, 0),
    }
}

/// Removes every pin under `root` (maps and links): enforcement stops once no
/// process holds the links. Used by `enforcer uninstall`.
pub fn remove_pins(root: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for sub in ["links", "maps"] {
        let dir = root.join(sub);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            fs::remove_file(e.path())?;
            removed += 1;
        }
        let _ = fs::remove_dir(&dir);
    }
    let _ = fs::remove_dir(root);
    Ok(removed)
}
