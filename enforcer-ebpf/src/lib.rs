//! Packet access and header parsing shared by enforcer's programs.
//!
//! Everything that touches packet memory goes through [`packet::Packet`], the one
//! bounds-checked accessor, so the verifier's packet-range proofs live in one place.
#![no_std]

pub mod headers;
pub mod packet;
pub mod parse;
