//! A bare XDP_PASS program. Tests attach it to the client end of a veth:
//! a veth only wakes its peer for frames sent back with XDP_TX (enforcer's
//! `reject` resets) when that peer runs an XDP program. Benchmarks use it as
//! the veth's own XDP cost.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
