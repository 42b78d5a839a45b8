//! Making sure the pin directory is on a bpffs.

use std::path::Path;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes only into the struct we pass.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path, `st` a valid out-pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Ensures `root` can hold pins: mounts bpffs on /sys/fs/bpf when `root` is
/// under it and nothing is mounted there yet (as systemd does at boot).
pub fn ensure(root: &Path) -> anyhow::Result<()> {
    let mut probe = root;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => break,
        }
    }
    if is_bpffs(probe) {
        return Ok(());
    }
    let sys = Path::new("/sys/fs/bpf");
    if root.starts_with(sys) && !is_bpffs(sys) {
        let src = c"bpf";
        let target = c"/sys/fs/bpf";
        // SAFETY: valid C strings; mount(2) has no memory effects on us.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            anyhow::bail!(
                "/sys/fs/bpf is not a bpffs and mounting one failed: {} (run `mount -t bpf bpf /sys/fs/bpf`)",
                std::io::Error::last_os_error()
            );
        }
        tracing::info!("mounted bpffs on /sys/fs/bpf");
        return Ok(());
    }
    anyhow::bail!(
        "{} is not on a bpffs: pins need one (mount -t bpf bpf DIR, or use a directory under /sys/fs/bpf)",
        root.display()
    )
}
