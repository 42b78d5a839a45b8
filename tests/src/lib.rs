//! Test harness for enforcer: packet builders, network-namespace guards, a
//! loaded program for BPF_PROG_TEST_RUN, a small HTTP server, and helpers to
//! run the agent and CLI.
pub mod agent;
pub mod httpd;
pub mod netns;
pub mod packet;
pub mod testrun;
