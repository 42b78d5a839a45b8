use std::collections::HashMap;

use super::*;

/// A sink that records what the kernel would hold, with a capacity.
#[derive(Default)]
struct FakeKernel {
    blocks: HashMap<IpNet, BlockEntry>,
    allows: HashMap<IpNet, AllowEntry>,
    capacity: usize,
    writes: usize,
}

impl Sink for FakeKernel {
    fn upsert_blocks(&mut self, items: &[(IpNet, BlockEntry)]) -> Result<(), KernelError> {
        let new = items
            .iter()
            .filter(|(p, _)| !self.blocks.contains_key(p))
            .count();
        if self.blocks.len() + new > self.capacity {
            return Err(KernelError::Full {
                what: "IPv4 blocklist",
                entries: self.blocks.len(),
                adding: new,
                capacity: self.capacity,
            });
        }
        self.writes += items.len();
        self.blocks.extend(items.iter().copied());
        Ok(())
    }
    fn remove_blocks(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        for p in prefixes {
            if self.blocks.remove(p).is_some() {
                self.writes += 1;
            }
        }
        Ok(())
    }
    fn upsert_allows(&mut self, items: &[(IpNet, AllowEntry)]) -> Result<(), KernelError> {
        self.allows.extend(items.iter().copied());
        Ok(())
    }
    fn remove_allows(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        for p in prefixes {
            self.allows.remove(p);
        }
        Ok(())
    }
}

fn store(capacity: usize) -> Store<FakeKernel> {
    Store::in_memory(FakeKernel {
        capacity,
        ..Default::default()
    })
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn put(p: &str, origin: Origin, ttl: Option<u64>) -> Change {
    Change::Put {
        kind: Kind::Block,
        prefix: net(p),
        origin,
        source: 0,
        reason: shared(&format!("{} says so", origin.name())),
        ttl: ttl.map(Duration::from_secs),
    }
}

#[test]
fn a_batch_that_does_not_fit_changes_nothing() {
    let mut s = store(2);
    s.apply(vec![put("198.18.0.1/32", Origin::Manual, None)])
        .unwrap();
    let err = s
        .apply(vec![
            put("198.18.0.2/32", Origin::Manual, None),
            put("198.18.0.3/32", Origin::Manual, None),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert_eq!(s.len(Kind::Block), 1);
    assert_eq!(s.sink().blocks.len(), 1);
}

#[test]
fn origins_are_kept_apart() {
    let mut s = store(10);
    s.apply(vec![put("198.18.0.0/24", Origin::Feed, None)])
        .unwrap();
    s.apply(vec![put("198.18.0.0/24", Origin::Manual, Some(3600))])
        .unwrap();
    // The feed's never-expiring entry represents the prefix in the kernel.
    assert_eq!(
        s.sink().blocks[&net("198.18.0.0/24")].origin,
        Origin::Feed as u32
    );
    // The feed lets go; the manual ban stays, now represented by its TTL.
    s.apply(vec![Change::Remove {
        kind: Kind::Block,
        prefix: net("198.18.0.0/24"),
        origin: Some(Origin::Feed),
        source: None,
    }])
    .unwrap();
    let k = s.sink().blocks[&net("198.18.0.0/24")];
    assert_eq!(k.origin, Origin::Manual as u32);
    assert_ne!(k.expires_ns, 0);
    assert_eq!(s.list(None).len(), 1);
    // Removing every origin lifts it; removing again reports not found.
    let r = s
        .apply(vec![Change::Remove {
            kind: Kind::Block,
            prefix: net("198.18.0.0/24"),
            origin: None,
            source: None,
        }])
        .unwrap();
    assert_eq!(r.removed, 1);
    assert!(s.sink().blocks.is_empty());
    let r = s
        .apply(vec![Change::Remove {
            kind: Kind::Block,
            prefix: net("198.18.0.0/24"),
            origin: None,
            source: None,
        }])
        .unwrap();
    assert_eq!(r.not_found, vec![net("198.18.0.0/24")]);
}

#[test]
fn replace_origin_applies_only_the_difference() {
    let mut s = store(100);
    let feed = |v: &[&str]| -> Vec<(IpNet, String)> {
        v.iter().map(|p| (net(p), "feed".to_owned())).collect()
    };
    s.replace_origin(
        Kind::Block,
        Origin::Feed,
        1,
        &feed(&["198.18.0.0/24", "198.18.1.0/24"]),
    )
    .unwrap();
    s.apply(vec![put("198.18.9.9/32", Origin::Manual, None)])
        .unwrap();
    let writes = s.sink().writes;
    let r = s
        .replace_origin(
            Kind::Block,
            Origin::Feed,
            1,
            &feed(&["198.18.1.0/24", "198.18.2.0/24"]),
        )
        .unwrap();
    assert_eq!((r.added, r.removed), (1, 1));
    assert_eq!(
        s.sink().writes - writes,
        2,
        "one insert and one delete reached the kernel"
    );
    assert!(
        s.sink().blocks.contains_key(&net("198.18.9.9/32")),
        "manual ban untouched"
    );
    assert!(!s.sink().blocks.contains_key(&net("198.18.0.0/24")));
}

#[test]
fn sweep_removes_expired_entries() {
    let mut s = store(10);
    s.apply(vec![put("198.18.0.1/32", Origin::Manual, None)])
        .unwrap();
    s.apply(vec![Change::Put {
        kind: Kind::Block,
        prefix: net("198.18.0.2/32"),
        origin: Origin::Manual,
        source: 0,
        reason: shared("short"),
        ttl: Some(Duration::from_millis(1)),
    }])
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(s.sweep().unwrap(), 1);
    assert_eq!(s.len(Kind::Block), 1);
    assert!(!s.sink().blocks.contains_key(&net("198.18.0.2/32")));
    assert_eq!(s.stats.expired, 1);
    assert_eq!(s.sweep().unwrap(), 0);
}
