//! The only module that touches BPF objects: loading, attaching, pins and map
//! handles. Everything above it speaks in prefixes, decisions and counters.
//!
//! Maps and links are pinned under one bpffs directory (`/sys/fs/bpf/enforcer`
//! by default) so that enforcement outlives the agent: a restarted or upgraded
//! agent reuses the pinned maps with their contents and swaps its new program
//! into the pinned XDP links with `bpf_link_update`, which is atomic, so no
//! packet ever meets an interface without the program.

pub mod clock;
pub mod counters;
mod datapath;
pub mod http;
pub mod object;
pub mod prefix_maps;
pub mod ratelimit;
pub mod sockdiag;
pub mod sys;

pub use datapath::{
    AttachedMode, Attachment, Datapath, LoadOptions, Parts, Programs, XDP_PROGRAM, XdpModeChoice,
    remove_pins,
};

/// Errors of the kernel side, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("the kernel rejected program `{name}`: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("the eBPF object has no map `{0}` (agent and object out of step: rebuild)")]
    MissingMap(&'static str),
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("writing map `{0}` failed: {1}")]
    Write(&'static str, #[source] std::io::Error),
    #[error(
        "the {what} is full: {entries} entries, adding {adding} would exceed its capacity of \
         {capacity}; nothing was applied (raise the capacity in [maps] and restart, or aggregate \
         the prefixes)"
    )]
    Full {
        what: &'static str,
        entries: usize,
        adding: usize,
        capacity: usize,
    },
    #[error(
        "pinned map `{name}` at {path} has a different layout ({found}) than this build expects \
         ({expected}); it was left by another version of enforcer. Run `enforcer uninstall` to \
         remove the old pins (this stops enforcement until the agent starts again)"
    )]
    PinnedLayout {
        name: &'static str,
        path: String,
        found: String,
        expected: String,
    },
    #[error("bpffs at {path}: {source} (is /sys/fs/bpf mounted? `mount -t bpf bpf /sys/fs/bpf`)")]
    Bpffs {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interface `{iface}`: {message}")]
    Attach { iface: String, message: String },
}
