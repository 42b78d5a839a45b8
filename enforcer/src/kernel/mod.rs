//! The only module that touches BPF objects.
pub mod object;
