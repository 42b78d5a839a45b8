//! Network namespaces joined by veth pairs, removed by guards even on panic.
//!
//! Each topology gets namespace names unique to this process and test, and
//! addresses only from 198.18.0.0/15 and 2001:2::/48.

use std::{
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(1);

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// The path `setns`/`nsenter` take.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veths in it (and their peers).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// One client namespace linked to the server namespace.
pub struct Client {
    pub ns: Netns,
    /// The server-side interface of the link (where XDP runs).
    pub server_if: String,
    pub addr4: String,
    pub addr6: String,
    /// The server's address on this link.
    pub server4: String,
    pub server6: String,
}

/// A server namespace with `n` client namespaces, each on its own veth pair:
/// link i uses 198.18.K.(4i)/30 and 2001:2:i:K::/64, K unique per topology.
pub struct Topology {
    pub server: Netns,
    pub clients: Vec<Client>,
    pub tag: String,
    /// The XDP_PASS programs on the client ends (detached with the links).
    _peer_xdp: Vec<aya::Ebpf>,
}

/// One end of a veth pair: its namespace, its name, and its addresses
/// (CIDR; IPv6 ones without duplicate address detection).
pub struct End<'a> {
    pub ns: &'a Netns,
    pub name: &'a str,
    pub addrs: &'a [&'a str],
}

/// A veth pair joining two namespaces, addressed and up.
pub fn veth(a: &End<'_>, b: &End<'_>) {
    assert!(
        a.name.len() <= 15 && b.name.len() <= 15,
        "interface name too long: {} / {}",
        a.name,
        b.name
    );
    sh(&[
        "ip", "link", "add", a.name, "netns", &a.ns.name, "type", "veth", "peer", "name", b.name,
        "netns", &b.ns.name,
    ]);
    for end in [a, b] {
        for addr in end.addrs {
            let mut cmd = vec![
                "ip",
                "-n",
                &end.ns.name,
                "addr",
                "add",
                addr,
                "dev",
                end.name,
            ];
            if addr.contains(':') {
                cmd.push("nodad");
            }
            sh(&cmd);
        }
        sh(&["ip", "-n", &end.ns.name, "link", "set", end.name, "up"]);
    }
}

/// Attaches the bare XDP_PASS program to `iface` in the namespace at `ns_path`.
pub fn attach_pass(ns_path: &str, iface: &str) -> aya::Ebpf {
    let (ns_path, iface) = (ns_path.to_owned(), iface.to_owned());
    std::thread::spawn(move || {
        enter(&ns_path);
        let mut ebpf = aya::Ebpf::load(enforcer::kernel::object::PASS).expect("loading XDP_PASS");
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut("pass")
            .expect("program pass")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("verifying XDP_PASS");
        prog.attach(&iface, aya::programs::XdpMode::Driver)
            .unwrap_or_else(|e| panic!("attaching XDP_PASS to {iface}: {e}"));
        ebpf
    })
    .join()
    .expect("attaching XDP_PASS")
}

impl Topology {
    pub fn new(n: usize) -> Self {
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let k = (std::process::id().wrapping_mul(31).wrapping_add(id * 7)) % 250 + 1;
        let tag = format!("{}{}", std::process::id() % 100_000, id);
        let server = Netns::new(format!("enf-{tag}-srv"));
        let mut clients = Vec::new();
        let mut peer_xdp = Vec::new();
        for i in 0..n {
            let ns = Netns::new(format!("enf-{tag}-c{i}"));
            let server_if = format!("es{tag}{i}");
            let client_if = format!("ec{tag}{i}");
            let base = 4 * i as u32;
            let server4 = format!("198.18.{k}.{}", base + 1);
            let addr4 = format!("198.18.{k}.{}", base + 2);
            let server6 = format!("2001:2:{i:x}:{k:x}::1");
            let addr6 = format!("2001:2:{i:x}:{k:x}::2");
            veth(
                &End {
                    ns: &server,
                    name: &server_if,
                    addrs: &[&format!("{server4}/30"), &format!("{server6}/64")],
                },
                &End {
                    ns: &ns,
                    name: &client_if,
                    addrs: &[&format!("{addr4}/30"), &format!("{addr6}/64")],
                },
            );
            // A veth wakes its peer for frames sent back with XDP_TX (the
            // `reject` resets) only when the peer runs an XDP program (see
            // veth_xdp_flush): the client end gets a bare XDP_PASS.
            peer_xdp.push(attach_pass(&ns.path(), &client_if));
            clients.push(Client {
                ns,
                server_if,
                addr4,
                addr6,
                server4,
                server6,
            });
        }
        Self {
            server,
            clients,
            tag,
            _peer_xdp: peer_xdp,
        }
    }

    /// The server-side interfaces (to attach XDP to).
    pub fn server_ifs(&self) -> Vec<String> {
        self.clients.iter().map(|c| c.server_if.clone()).collect()
    }
}

/// Moves the calling thread into a namespace (sockets made afterwards live there).
pub fn enter(ns_path: &str) {
    let f = std::fs::File::open(ns_path).unwrap_or_else(|e| panic!("open {ns_path}: {e}"));
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on a valid namespace fd affects only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns_path}: {}", std::io::Error::last_os_error());
}
