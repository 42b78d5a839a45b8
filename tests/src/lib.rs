//! Test harness for enforcer: packet builders, network-namespace guards, a
//! loaded program for BPF_PROG_TEST_RUN, and helpers to run the agent and CLI.
pub mod packet;
pub mod testrun;
