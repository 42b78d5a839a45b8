//! Writing allow and block prefixes into the kernel maps.
//!
//! The block maps are exact-match hashes plus per-bucket summaries of which
//! prefix lengths exist (see `enforcer_common::prefix`). This module keeps the
//! summaries consistent with the hashes: a summary bit is set once the first
//! prefix of that length lands in the bucket (after the hash entry is written)
//! and cleared only when the last one leaves. It is the single writer of these
//! maps, so it also knows their occupancy and refuses a write that would not
//! fit before touching anything: a command is all or nothing, and a full map
//! never silently drops a block.

use std::{net::IpAddr, os::fd::AsFd as _};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use aya::maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, lpm_trie::Key};
use enforcer_common::{
    blocklist::{AllowEntry, BlockEntry, PrefixKeyV4, PrefixKeyV6},
    prefix::{
        V4_FILTER_BITS_LOG2, V4_FILTER_WORDS, V4LengthMask, V6_FILTER_BITS_LOG2, V6_FILTER_WORDS,
        V6LengthMask, filter_slot, v4_filter_hash, v4_prefix_buckets, v6_filter_hash,
        v6_prefix_buckets,
    },
};
use ipnet::IpNet;

use super::{KernelError, sys};

/// Which family a map belongs to (for errors and status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// Occupancy of one map.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Occupancy {
    pub entries: usize,
    pub capacity: usize,
}

/// The allow and block maps with the bookkeeping that keeps them consistent.
pub struct PrefixMaps {
    block_v4: BpfHashMap<MapData, PrefixKeyV4, BlockEntry>,
    block_v6: BpfHashMap<MapData, PrefixKeyV6, BlockEntry>,
    summary_v4: Array<MapData, V4LengthMask>,
    summary_v6: Array<MapData, V6LengthMask>,
    allow_v4: LpmTrie<MapData, [u8; 4], AllowEntry>,
    allow_v6: LpmTrie<MapData, [u8; 16], AllowEntry>,
    filter_v4: Array<MapData, u64>,
    filter_v6: Array<MapData, u64>,
    /// Mirrors of the filter arrays.
    fmirror_v4: Vec<u64>,
    fmirror_v6: Vec<u64>,
    /// Filter bits set by more than one prefix: (family, bit) → extra references.
    fshared: HashMap<(Family, u32), u32>,
    /// Block-map keys written and deleted since start (feeds and reloads are
    /// applied as diffs; these show how small the diff was).
    pub writes: u64,
    pub deletes: u64,
    /// IPv4 members of `blocks` and `allows` (so occupancy is O(1): a
    /// metrics scrape must not walk a million-entry set).
    blocks_v4: usize,
    allows_v4: usize,
    /// Block prefixes present in the hashes.
    blocks: HashSet<IpNet>,
    /// Allow prefixes present in the tries.
    allows: HashSet<IpNet>,
    /// IPv4 (bucket, length) → number of block prefixes of that length
    /// covering the bucket, dense: `bucket * 33 + length`.
    counts_v4: Vec<u32>,
    /// IPv6 (bucket, length) → the same, sparse.
    counts_v6: HashMap<(u32, u8), u32>,
    /// Mirrors of the summary arrays.
    mirror_v4: Vec<V4LengthMask>,
    mirror_v6: Vec<V6LengthMask>,
    capacity_v4: usize,
    capacity_v6: usize,
    capacity_allow: usize,
}

/// Summary buckets whose value changed during one write, to flush in a batch.
#[derive(Default)]
struct Dirty {
    v4: HashSet<u32>,
    v6: HashSet<u32>,
    /// Filter words.
    fv4: HashSet<u32>,
    fv6: HashSet<u32>,
}

impl PrefixMaps {
    /// Takes the maps out of a loaded object. The maps may already hold entries
    /// (reused pins); [`Self::adopt_existing`] reads them back.
    pub fn new(
        ebpf: &mut aya::Ebpf,
        capacity_v4: usize,
        capacity_v6: usize,
        capacity_allow: usize,
    ) -> Result<Self, KernelError> {
        use enforcer_common::maps as m;
        let take = |ebpf: &mut aya::Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(KernelError::MissingMap(name))
        };
        let conv = |name: &'static str| move |e| KernelError::Map { name, source: e };
        Ok(Self {
            block_v4: BpfHashMap::try_from(take(ebpf, m::BLOCK_V4)?).map_err(conv(m::BLOCK_V4))?,
            block_v6: BpfHashMap::try_from(take(ebpf, m::BLOCK_V6)?).map_err(conv(m::BLOCK_V6))?,
            summary_v4: Array::try_from(take(ebpf, m::BLOCK_V4_SUMMARY)?)
                .map_err(conv(m::BLOCK_V4_SUMMARY))?,
            summary_v6: Array::try_from(take(ebpf, m::BLOCK_V6_SUMMARY)?)
                .map_err(conv(m::BLOCK_V6_SUMMARY))?,
            allow_v4: LpmTrie::try_from(take(ebpf, m::ALLOW_V4)?).map_err(conv(m::ALLOW_V4))?,
            allow_v6: LpmTrie::try_from(take(ebpf, m::ALLOW_V6)?).map_err(conv(m::ALLOW_V6))?,
            filter_v4: Array::try_from(take(ebpf, m::BLOCK_V4_FILTER)?)
                .map_err(conv(m::BLOCK_V4_FILTER))?,
            filter_v6: Array::try_from(take(ebpf, m::BLOCK_V6_FILTER)?)
                .map_err(conv(m::BLOCK_V6_FILTER))?,
            fmirror_v4: vec![0; V4_FILTER_WORDS as usize],
            fmirror_v6: vec![0; V6_FILTER_WORDS as usize],
            fshared: HashMap::default(),
            writes: 0,
            deletes: 0,
            blocks_v4: 0,
            allows_v4: 0,
            blocks: HashSet::default(),
            allows: HashSet::default(),
            counts_v4: vec![0; enforcer_common::prefix::SUMMARY_BUCKETS as usize * 33],
            counts_v6: HashMap::default(),
            mirror_v4: vec![0; enforcer_common::prefix::SUMMARY_BUCKETS as usize],
            mirror_v6: vec![
                V6LengthMask::default();
                enforcer_common::prefix::SUMMARY_BUCKETS as usize
            ],
            capacity_v4,
            capacity_v6,
            capacity_allow,
        })
    }

    /// Reads back what reused (pinned) maps already hold, rebuilding the
    /// bookkeeping, and rewrites the summaries from it. Returns the entries found.
    #[allow(clippy::type_complexity)]
    pub fn adopt_existing(
        &mut self,
    ) -> Result<(Vec<(IpNet, BlockEntry)>, Vec<(IpNet, AllowEntry)>), KernelError> {
        let mut blocks = Vec::new();
        for item in self.block_v4.iter() {
            let (k, v) = item.map_err(|e| KernelError::Map {
                name: enforcer_common::maps::BLOCK_V4,
                source: e,
            })?;
            if let Ok(net) = ipnet::Ipv4Net::new(k.addr.into(), k.prefix_len as u8) {
                blocks.push((IpNet::V4(net), v));
            }
        }
        for item in self.block_v6.iter() {
            let (k, v) = item.map_err(|e| KernelError::Map {
                name: enforcer_common::maps::BLOCK_V6,
                source: e,
            })?;
            if let Ok(net) = ipnet::Ipv6Net::new(k.addr.into(), k.prefix_len as u8) {
                blocks.push((IpNet::V6(net), v));
            }
        }
        let mut allows = Vec::new();
        for item in self.allow_v4.iter() {
            let (k, v) = item.map_err(|e| KernelError::Map {
                name: enforcer_common::maps::ALLOW_V4,
                source: e,
            })?;
            if let Ok(net) = ipnet::Ipv4Net::new(k.data().into(), k.prefix_len() as u8) {
                allows.push((IpNet::V4(net), v));
            }
        }
        for item in self.allow_v6.iter() {
            let (k, v) = item.map_err(|e| KernelError::Map {
                name: enforcer_common::maps::ALLOW_V6,
                source: e,
            })?;
            if let Ok(net) = ipnet::Ipv6Net::new(k.data().into(), k.prefix_len() as u8) {
                allows.push((IpNet::V6(net), v));
            }
        }
        self.blocks.clear();
        self.blocks_v4 = 0;
        self.counts_v4.iter_mut().for_each(|c| *c = 0);
        self.counts_v6.clear();
        self.fshared.clear();
        self.fmirror_v4.iter_mut().for_each(|m| *m = 0);
        self.fmirror_v6.iter_mut().for_each(|m| *m = 0);
        self.mirror_v4.iter_mut().for_each(|m| *m = 0);
        self.mirror_v6
            .iter_mut()
            .for_each(|m| *m = V6LengthMask::default());
        let mut dirty = Dirty::default();
        for (p, _) in &blocks {
            self.block_insert(p);
            self.count_up(p, &mut dirty);
        }
        self.allows = allows.iter().map(|(p, _)| *p).collect();
        self.allows_v4 = self
            .allows
            .iter()
            .filter(|p| matches!(p, IpNet::V4(_)))
            .count();
        // Rewrite every summary bucket: stale bits from an earlier run are
        // harmless (a wasted probe) but would never be cleared otherwise.
        let all_v4: Vec<u32> = (0..enforcer_common::prefix::SUMMARY_BUCKETS).collect();
        self.write_summary(Family::V4, &all_v4)?;
        self.write_summary(Family::V6, &all_v4)?;
        let words4: Vec<u32> = (0..V4_FILTER_WORDS).collect();
        let words6: Vec<u32> = (0..V6_FILTER_WORDS).collect();
        self.write_filter(Family::V4, &words4)?;
        self.write_filter(Family::V6, &words6)?;
        Ok((blocks, allows))
    }

    pub fn block_occupancy(&self) -> (Occupancy, Occupancy) {
        let v4 = self.blocks_v4;
        (
            Occupancy {
                entries: v4,
                capacity: self.capacity_v4,
            },
            Occupancy {
                entries: self.blocks.len() - v4,
                capacity: self.capacity_v6,
            },
        )
    }

    pub fn allow_occupancy(&self) -> (Occupancy, Occupancy) {
        let v4 = self.allows_v4;
        (
            Occupancy {
                entries: v4,
                capacity: self.capacity_allow,
            },
            Occupancy {
                entries: self.allows.len() - v4,
                capacity: self.capacity_allow,
            },
        )
    }

    fn block_insert(&mut self, p: &IpNet) -> bool {
        let new = self.blocks.insert(*p);
        if new && matches!(p, IpNet::V4(_)) {
            self.blocks_v4 += 1;
        }
        new
    }

    fn block_remove(&mut self, p: &IpNet) -> bool {
        let was = self.blocks.remove(p);
        if was && matches!(p, IpNet::V4(_)) {
            self.blocks_v4 -= 1;
        }
        was
    }

    pub fn has_block(&self, p: &IpNet) -> bool {
        self.blocks.contains(p)
    }

    /// Inserts or replaces block entries. Refused as a whole, before any write,
    /// if the new prefixes would not fit.
    pub fn upsert_blocks(&mut self, items: &[(IpNet, BlockEntry)]) -> Result<(), KernelError> {
        // Counted without de-duplicating `items`: a repeated prefix only makes
        // the check stricter, never looser.
        let mut new_v4 = 0usize;
        let mut new_v6 = 0usize;
        for (p, _) in items {
            if !self.blocks.contains(p) {
                match p {
                    IpNet::V4(_) => new_v4 += 1,
                    IpNet::V6(_) => new_v6 += 1,
                }
            }
        }
        let (o4, o6) = self.block_occupancy();
        if o4.entries + new_v4 > o4.capacity {
            return Err(KernelError::Full {
                what: "IPv4 blocklist",
                entries: o4.entries,
                adding: new_v4,
                capacity: o4.capacity,
            });
        }
        if o6.entries + new_v6 > o6.capacity {
            return Err(KernelError::Full {
                what: "IPv6 blocklist",
                entries: o6.entries,
                adding: new_v6,
                capacity: o6.capacity,
            });
        }
        let mut k4 = Vec::new();
        let mut v4 = Vec::new();
        let mut k6 = Vec::new();
        let mut v6 = Vec::new();
        for (p, e) in items {
            match p {
                IpNet::V4(n) => {
                    k4.push(PrefixKeyV4::new(
                        n.addr().octets(),
                        u32::from(n.prefix_len()),
                    ));
                    v4.push(*e);
                }
                IpNet::V6(n) => {
                    k6.push(PrefixKeyV6::new(
                        &n.addr().octets(),
                        u32::from(n.prefix_len()),
                    ));
                    v6.push(*e);
                }
            }
        }
        // Hash entries first, then summary bits: a packet never sees a bit
        // without its entry (which would only cost a probe, but keep it tidy).
        let t0 = std::time::Instant::now();
        // The kernel inserts (one allocation per element) dominate a bulk load:
        // split them over two threads, and do the summary and filter
        // bookkeeping on this one meanwhile. Nothing is published before both
        // writes finished: summary and filter bits are flushed after.
        let mut dirty = Dirty::default();
        self.blocks.reserve(new_v4 + new_v6);
        let dup = |fd: std::os::fd::BorrowedFd<'_>| {
            fd.try_clone_to_owned()
                .map_err(|e| KernelError::Write("BLOCK_V4", e))
        };
        let fd4 = dup(self.block_v4.fd_as_fd())?;
        let fd6 = dup(self.block_v6.fd_as_fd())?;
        let mut fresh = Vec::with_capacity(new_v4 + new_v6);
        let (r4a, r4b, r6) = std::thread::scope(|scope| {
            let half = (k4.len() / 2).max(sys::BATCH.min(k4.len()));
            let (ka, kb) = k4.split_at(half);
            let (va, vb) = v4.split_at(half);
            let (fd4, fd6) = (&fd4, &fd6);
            let a = scope.spawn(move || sys::update_batch(fd4.as_fd(), ka, va));
            let b = scope.spawn(move || {
                let r = sys::update_batch(fd4.as_fd(), kb, vb);
                (r, sys::update_batch(fd6.as_fd(), &k6, &v6))
            });
            // Meanwhile, the bookkeeping; nothing of it reaches the kernel
            // before both writes are done (see `flush` below).
            for (p, _) in items {
                if self.block_insert(p) {
                    self.count_up(p, &mut dirty);
                    fresh.push(*p);
                }
            }
            let (rb, r6) = b.join().unwrap_or_else(|_| {
                let e = || Err((0, std::io::Error::other("writer thread panicked")));
                (e(), e())
            });
            let ra = a
                .join()
                .unwrap_or_else(|_| Err((0, std::io::Error::other("writer thread panicked"))));
            (ra, rb, r6)
        });
        let t1 = std::time::Instant::now();
        self.writes += items.len() as u64;
        let failed = [r4a, r4b]
            .into_iter()
            .find_map(Result::err)
            .map(|(_, e)| KernelError::Write("BLOCK_V4", e))
            .or_else(|| r6.err().map(|(_, e)| KernelError::Write("BLOCK_V6", e)));
        if let Some(e) = failed {
            // Undo the bookkeeping of this call, so it matches what the maps hold
            // as closely as we can tell (entries written before the failure stay;
            // the next write of the same prefixes replaces them).
            let mut undo = Dirty::default();
            for p in &fresh {
                self.block_remove(p);
                self.count_down(p, &mut undo);
            }
            return Err(e);
        }
        let t2 = std::time::Instant::now();
        let r = self.flush(&dirty);
        tracing::debug!(
            entries = items.len(),
            writes_and_bookkeeping_ms = (t1 - t0).as_millis() as u64,
            after_ms = (t2 - t1).as_millis() as u64,
            summaries_ms = t2.elapsed().as_millis() as u64,
            "prefix maps: upsert"
        );
        r
    }

    /// Removes block entries; prefixes not present are ignored.
    pub fn remove_blocks(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        let mut dirty = Dirty::default();
        let mut k4 = Vec::new();
        let mut k6 = Vec::new();
        for p in prefixes {
            if !self.block_remove(p) {
                continue;
            }
            self.count_down(p, &mut dirty);
            match p {
                IpNet::V4(n) => {
                    k4.push(PrefixKeyV4::new(
                        n.addr().octets(),
                        u32::from(n.prefix_len()),
                    ));
                }
                IpNet::V6(n) => {
                    k6.push(PrefixKeyV6::new(
                        &n.addr().octets(),
                        u32::from(n.prefix_len()),
                    ));
                }
            }
        }
        // Summary bits first: a cleared bit means no probe, an absent entry with
        // its bit still set only costs a probe. Either order is safe.
        self.deletes += (k4.len() + k6.len()) as u64;
        self.flush(&dirty)?;
        sys::delete_batch(self.block_v4.fd_as_fd(), &k4)
            .map_err(|e| KernelError::Write("BLOCK_V4", e))?;
        sys::delete_batch(self.block_v6.fd_as_fd(), &k6)
            .map_err(|e| KernelError::Write("BLOCK_V6", e))?;
        Ok(())
    }

    /// Inserts or replaces allow entries (refused as a whole if they do not fit).
    pub fn upsert_allows(&mut self, items: &[(IpNet, AllowEntry)]) -> Result<(), KernelError> {
        let (o4, o6) = self.allow_occupancy();
        let new4 = items
            .iter()
            .filter(|(p, _)| matches!(p, IpNet::V4(_)) && !self.allows.contains(p))
            .count();
        let new6 = items
            .iter()
            .filter(|(p, _)| matches!(p, IpNet::V6(_)) && !self.allows.contains(p))
            .count();
        if o4.entries + new4 > o4.capacity || o6.entries + new6 > o6.capacity {
            return Err(KernelError::Full {
                what: "allowlist",
                entries: o4.entries + o6.entries,
                adding: new4 + new6,
                capacity: o4.capacity,
            });
        }
        for (p, e) in items {
            match p {
                IpNet::V4(n) => self.allow_v4.insert(
                    &Key::new(u32::from(n.prefix_len()), n.addr().octets()),
                    *e,
                    0,
                ),
                IpNet::V6(n) => self.allow_v6.insert(
                    &Key::new(u32::from(n.prefix_len()), n.addr().octets()),
                    *e,
                    0,
                ),
            }
            .map_err(|e| KernelError::Map {
                name: "ALLOW",
                source: e,
            })?;
            if self.allows.insert(*p) && matches!(p, IpNet::V4(_)) {
                self.allows_v4 += 1;
            }
        }
        Ok(())
    }

    /// Removes allow entries; prefixes not present are ignored.
    pub fn remove_allows(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        for p in prefixes {
            if !self.allows.remove(p) {
                continue;
            }
            if matches!(p, IpNet::V4(_)) {
                self.allows_v4 -= 1;
            }
            let r = match p {
                IpNet::V4(n) => self
                    .allow_v4
                    .remove(&Key::new(u32::from(n.prefix_len()), n.addr().octets())),
                IpNet::V6(n) => self
                    .allow_v6
                    .remove(&Key::new(u32::from(n.prefix_len()), n.addr().octets())),
            };
            match r {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => {
                    return Err(KernelError::Map {
                        name: "ALLOW",
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// The filter slot of a block prefix.
    fn filter_bit(p: &IpNet) -> (Family, u32) {
        match p {
            IpNet::V4(n) => {
                let h = v4_filter_hash(n.network().octets(), u32::from(n.prefix_len()));
                let (w, b) = filter_slot(h, V4_FILTER_BITS_LOG2);
                (Family::V4, w * 64 + b)
            }
            IpNet::V6(n) => {
                let h = v6_filter_hash(&n.network().octets(), u32::from(n.prefix_len()));
                let (w, b) = filter_slot(h, V6_FILTER_BITS_LOG2);
                (Family::V6, w * 64 + b)
            }
        }
    }

    fn filter_up(&mut self, p: &IpNet, dirty: &mut Dirty) {
        let (fam, bit) = Self::filter_bit(p);
        let (mirror, words) = match fam {
            Family::V4 => (&mut self.fmirror_v4, &mut dirty.fv4),
            Family::V6 => (&mut self.fmirror_v6, &mut dirty.fv6),
        };
        let (w, b) = ((bit / 64) as usize, bit % 64);
        if mirror[w] & (1 << b) == 0 {
            mirror[w] |= 1 << b;
            words.insert(w as u32);
        } else {
            *self.fshared.entry((fam, bit)).or_insert(0) += 1;
        }
    }

    fn filter_down(&mut self, p: &IpNet, dirty: &mut Dirty) {
        let (fam, bit) = Self::filter_bit(p);
        if let Some(extra) = self.fshared.get_mut(&(fam, bit)) {
            *extra -= 1;
            if *extra == 0 {
                self.fshared.remove(&(fam, bit));
            }
            return;
        }
        let (mirror, words) = match fam {
            Family::V4 => (&mut self.fmirror_v4, &mut dirty.fv4),
            Family::V6 => (&mut self.fmirror_v6, &mut dirty.fv6),
        };
        let (w, b) = ((bit / 64) as usize, bit % 64);
        mirror[w] &= !(1 << b);
        words.insert(w as u32);
    }

    fn count_up(&mut self, p: &IpNet, dirty: &mut Dirty) {
        self.filter_up(p, dirty);
        match p {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                for b in v4_prefix_buckets(n.addr().octets(), u32::from(len)) {
                    let c = &mut self.counts_v4[b as usize * 33 + len as usize];
                    *c += 1;
                    if *c == 1 {
                        self.mirror_v4[b as usize] |= 1u64 << len;
                        dirty.v4.insert(b);
                    }
                }
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let mut seen = HashSet::default();
                for b in v6_prefix_buckets(&n.addr().octets(), u32::from(len)) {
                    // Several covered /32s may hash to one bucket: count it once.
                    if !seen.insert(b) {
                        continue;
                    }
                    let c = self.counts_v6.entry((b, len)).or_insert(0);
                    *c += 1;
                    if *c == 1 {
                        self.mirror_v6[b as usize].set(u32::from(len));
                        dirty.v6.insert(b);
                    }
                }
            }
        }
    }

    fn count_down(&mut self, p: &IpNet, dirty: &mut Dirty) {
        self.filter_down(p, dirty);
        match p {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                for b in v4_prefix_buckets(n.addr().octets(), u32::from(len)) {
                    let c = &mut self.counts_v4[b as usize * 33 + len as usize];
                    if *c > 0 {
                        *c -= 1;
                        if *c == 0 {
                            self.mirror_v4[b as usize] &= !(1u64 << len);
                            dirty.v4.insert(b);
                        }
                    }
                }
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let mut seen = HashSet::default();
                for b in v6_prefix_buckets(&n.addr().octets(), u32::from(len)) {
                    if !seen.insert(b) {
                        continue;
                    }
                    if let Some(c) = self.counts_v6.get_mut(&(b, len)) {
                        *c -= 1;
                        if *c == 0 {
                            self.counts_v6.remove(&(b, len));
                            self.mirror_v6[b as usize].clear(u32::from(len));
                            dirty.v6.insert(b);
                        }
                    }
                }
            }
        }
    }

    fn flush(&mut self, dirty: &Dirty) -> Result<(), KernelError> {
        // Filter bits before summary bits, so a length the summary announces
        // is never skipped by a stale filter.
        let fv4: Vec<u32> = dirty.fv4.iter().copied().collect();
        let fv6: Vec<u32> = dirty.fv6.iter().copied().collect();
        self.write_filter(Family::V4, &fv4)?;
        self.write_filter(Family::V6, &fv6)?;
        let v4: Vec<u32> = dirty.v4.iter().copied().collect();
        let v6: Vec<u32> = dirty.v6.iter().copied().collect();
        self.write_summary(Family::V4, &v4)?;
        self.write_summary(Family::V6, &v6)
    }

    fn write_filter(&mut self, family: Family, words: &[u32]) -> Result<(), KernelError> {
        if words.is_empty() {
            return Ok(());
        }
        let (map, mirror, name) = match family {
            Family::V4 => (&self.filter_v4, &self.fmirror_v4, "BLOCK_V4_FILTER"),
            Family::V6 => (&self.filter_v6, &self.fmirror_v6, "BLOCK_V6_FILTER"),
        };
        let vals: Vec<u64> = words.iter().map(|w| mirror[*w as usize]).collect();
        sys::update_batch(map.fd_as_fd(), words, &vals)
            .map_err(|(_, e)| KernelError::Write(name, e))
    }

    fn write_summary(&mut self, family: Family, buckets: &[u32]) -> Result<(), KernelError> {
        if buckets.is_empty() {
            return Ok(());
        }
        match family {
            Family::V4 => {
                let vals: Vec<V4LengthMask> = buckets
                    .iter()
                    .map(|b| self.mirror_v4[*b as usize])
                    .collect();
                sys::update_batch(self.summary_v4.fd_as_fd(), buckets, &vals)
                    .map_err(|(_, e)| KernelError::Write("BLOCK_V4_SUMMARY", e))
            }
            Family::V6 => {
                let vals: Vec<V6LengthMask> = buckets
                    .iter()
                    .map(|b| self.mirror_v6[*b as usize])
                    .collect();
                sys::update_batch(self.summary_v6.fd_as_fd(), buckets, &vals)
                    .map_err(|(_, e)| KernelError::Write("BLOCK_V6_SUMMARY", e))
            }
        }
    }

    /// Whether `addr` is covered by a block entry present in the maps (any
    /// expiry), for `status`/diagnostics; mirrors the kernel's lookup.
    pub fn covering_blocks(&self, addr: IpAddr) -> Vec<IpNet> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (0..=max)
            .rev()
            .filter_map(|len| IpNet::new(addr, len).ok().map(|n| n.trunc()))
            .filter(|n| self.blocks.contains(n))
            .collect()
    }
}

/// Access to a map's fd for the raw batch calls.
trait FdAsFd {
    fn fd_as_fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl<K: aya::Pod, V: aya::Pod> FdAsFd for BpfHashMap<MapData, K, V> {
    fn fd_as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        aya::maps::IterableMap::map(self).fd().as_fd()
    }
}

impl<V: aya::Pod> FdAsFd for Array<MapData, V> {
    fn fd_as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        aya::maps::IterableMap::map(self).fd().as_fd()
    }
}
