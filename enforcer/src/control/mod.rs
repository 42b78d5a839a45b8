//! The control API: a Unix socket speaking JSON lines, root (or an admin
//! group) only, checked by file mode and again by the peer's credentials.
pub mod client;
pub mod protocol;
pub mod server;
