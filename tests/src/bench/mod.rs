//! Benchmarks behind `cargo xtask bench`. Every figure is reported next to a
//! baseline measured the same way in the same run, with rounds interleaved and
//! the median kept, because these machines are shared and noisy.
pub mod dataset;
pub mod drop;
pub mod http;
pub mod load;
pub mod lookup;
pub mod observe;
pub mod policy;
pub mod ratelimit;
pub mod report;
