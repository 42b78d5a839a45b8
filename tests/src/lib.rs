//! Test harness for enforcer: packet builders, network-namespace guards, a
//! loaded program for BPF_PROG_TEST_RUN, a small HTTP server, helpers to run
//! the agent and CLI, and the benchmarks.
pub mod agent;
pub mod bench;
pub mod crowdsec;
pub mod demo;
pub mod httpc;
pub mod httpd;
pub mod netns;
pub mod packet;
pub mod testrun;
pub mod traffic;
