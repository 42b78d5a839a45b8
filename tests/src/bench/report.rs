//! Collecting samples and printing markdown.

/// Median of samples (sorts in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        })
}

/// Percentile (nearest rank) of samples (sorts in place).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A markdown report built up section by section.
#[derive(Default)]
pub struct Report {
    pub text: String,
}

impl Report {
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref());
        self.text.push('\n');
        println!("{}", s.as_ref());
    }

    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!("|{}", "---|".repeat(header.len())));
        for r in rows {
            self.line(format!("| {} |", r.join(" | ")));
        }
        self.line("");
    }
}

/// Waits (bounded) until the CPUs look idle, so a sample is not taken while
/// another tenant's burst is running; returns the idle fraction seen.
pub fn wait_idle(max_wait: std::time::Duration) -> f64 {
    let read = || -> Option<(u64, u64)> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let l = s.lines().next()?;
        let v: Vec<u64> = l
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3)? + v.get(4)?;
        Some((idle, v.iter().sum()))
    };
    let deadline = std::time::Instant::now() + max_wait;
    loop {
        let Some((i0, t0)) = read() else { return 1.0 };
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Some((i1, t1)) = read() else { return 1.0 };
        let idle = (i1 - i0) as f64 / (t1 - t0).max(1) as f64;
        if idle > 0.85 || std::time::Instant::now() > deadline {
            return idle;
        }
    }
}

/// Pins the calling thread to one CPU (generator and receiver share it).
/// Resident memory of process `pid` in KiB (`VmRSS`; 0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|x| x.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// One sample source for each address of 198.18.0.0/15 (131,072), as the
/// bench object's source-rewriting wrapper takes them.
pub fn every_v4_source() -> Vec<[u8; 16]> {
    let base = u32::from_be_bytes([198, 18, 0, 0]);
    (0..131_072u32)
        .map(|i| {
            let mut s = [0u8; 16];
            s[..4].copy_from_slice(&(base + i).to_be_bytes());
            s
        })
        .collect()
}

pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; we set one bit and pass its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
    }
}
