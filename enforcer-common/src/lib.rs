//! Everything the kernel programs and the agent must agree on, in one place.
//!
//! Map layouts, counter indices and the pure decision functions (prefix masking,
//! expiry, summary buckets) are defined once here and compiled into both the eBPF
//! object and the agent, so the two sides cannot drift apart the way hand-kept
//! copies in two languages do. Everything is `no_std`, panic-free and integer-only
//! so it runs unchanged inside the verifier's limits; the host runs the unit tests.
#![no_std]

pub mod blocklist;
pub mod counters;
pub mod http;
pub mod maps;
pub mod prefix;
pub mod ratelimit;
pub mod route;
pub mod stats;
pub mod time;

#[cfg(feature = "user")]
mod user;
