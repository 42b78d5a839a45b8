//! Builds the eBPF programs with the linked `debian-bpf` toolchain (Debian's rustc
//! ships a prebuilt `core` for bpfel-unknown-none; see ../shared/notes/TOOLCHAIN.md)
//! and leaves the objects in OUT_DIR for `include_bytes_aligned!`.

use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=ENFORCER_BPF_TOOLCHAIN");
    let toolchain =
        std::env::var("ENFORCER_BPF_TOOLCHAIN").unwrap_or_else(|_| "debian-bpf".to_owned());
    // aya-ebpf needs `asm_experimental_arch`. Naming the crate (rather than `1`)
    // enables unstable features for it alone and keeps aya-build from adding
    // `-Z build-std=core`, which Debian's toolchain cannot do (no rust-src).
    if std::env::var_os("RUSTC_BOOTSTRAP").is_none() {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf") };
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("enforcer/ has no parent directory"))?
        .join("enforcer-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", root.display()))?
        .to_owned();
    aya_build::build_ebpf(
        [Package {
            name: "enforcer-ebpf",
            root_dir: &root,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}
