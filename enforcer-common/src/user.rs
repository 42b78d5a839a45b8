//! `aya::Pod` for the shared types, so the agent can use them as map keys and values.
//!
//! SAFETY (for every impl below): each type is `#[repr(C)]`, `Copy`, made only of
//! integers and integer arrays, and has no implicit padding (the layout tests in
//! each module assert the sizes), so any bit pattern is a valid value.

use crate::{
    blocklist::{AllowEntry, BlockEntry, PrefixKeyV4, PrefixKeyV6},
    counters::Counter,
    prefix::V6LengthMask,
    ratelimit::{LimitEvent, RateConfig, RateKey, RateRule, RateState},
    route::{HttpConfig, RequestSample, RespKey, RespState, ResponseReport, RouteValue},
};

unsafe impl aya::Pod for PrefixKeyV4 {}
unsafe impl aya::Pod for PrefixKeyV6 {}
unsafe impl aya::Pod for BlockEntry {}
unsafe impl aya::Pod for AllowEntry {}
unsafe impl aya::Pod for Counter {}
unsafe impl aya::Pod for V6LengthMask {}
unsafe impl aya::Pod for RateRule {}
unsafe impl aya::Pod for RateConfig {}
unsafe impl aya::Pod for RateKey {}
unsafe impl aya::Pod for RateState {}
unsafe impl aya::Pod for LimitEvent {}
unsafe impl aya::Pod for RouteValue {}
unsafe impl aya::Pod for HttpConfig {}
unsafe impl aya::Pod for RequestSample {}
unsafe impl aya::Pod for ResponseReport {}
unsafe impl aya::Pod for RespKey {}
unsafe impl aya::Pod for RespState {}
