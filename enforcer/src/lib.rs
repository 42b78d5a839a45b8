//! enforcer: the agent, its control API and the CLI, as a library.
pub mod agent;
pub mod cli;
pub mod config;
pub mod control;
pub mod decisions;
pub mod feeds;
pub mod kernel;
pub mod net;
pub mod store;
