//! enforcer: the agent, its control API and the CLI, as a library.
pub mod kernel;
pub mod net;
pub mod store;
