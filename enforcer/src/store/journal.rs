//! Durable decisions: a snapshot plus an append-only journal of changes.
//!
//! Pinned maps keep enforcement across agent restarts, but not across reboots,
//! and they hold no reason text or wall-clock expiry. The journal does: each
//! applied command appends its changes (one JSON object per line) and syncs
//! before the command is acknowledged, so an acknowledged decision survives a
//! crash. On open, snapshot then journal are replayed and compacted into a
//! fresh snapshot (written aside and renamed, so a crash mid-write leaves the
//! old one). A damaged line (a torn write at a crash) is skipped and counted,
//! never fatal.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead as _, BufReader, BufWriter, Write as _},
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::decision::Kind;

/// One change, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Record {
    Put {
        kind: Kind,
        prefix: IpNet,
        origin: String,
        source: u32,
        reason: String,
        created: u64,
        expires: u64,
    },
    Del {
        kind: Kind,
        prefix: IpNet,
        /// `None` removes the decisions of every origin.
        origin: Option<String>,
        source: Option<u32>,
    },
    /// Many `Put`s sharing everything but the prefix (a feed, an import):
    /// one line instead of a million.
    PutMany {
        kind: Kind,
        prefixes: Vec<IpNet>,
        origin: String,
        source: u32,
        reason: String,
        created: u64,
        expires: u64,
    },
    /// Many `Del`s sharing everything but the prefix.
    DelMany {
        kind: Kind,
        prefixes: Vec<IpNet>,
        origin: Option<String>,
        source: Option<u32>,
    },
}

impl Record {
    /// Appends a put, extending the last record when only the prefix differs.
    #[allow(clippy::too_many_arguments)]
    pub fn push_put(
        out: &mut Vec<Self>,
        kind: Kind,
        prefix: IpNet,
        origin: &str,
        source: u32,
        reason: &str,
        created: u64,
        expires: u64,
    ) {
        if let Some(Self::PutMany {
            kind: k,
            prefixes,
            origin: o,
            source: s,
            reason: r,
            created: c,
            expires: e,
        }) = out.last_mut()
            && *k == kind
            && o == origin
            && *s == source
            && r == reason
            && *c == created
            && *e == expires
        {
            prefixes.push(prefix);
            return;
        }
        out.push(Self::PutMany {
            kind,
            prefixes: vec![prefix],
            origin: origin.to_owned(),
            source,
            reason: reason.to_owned(),
            created,
            expires,
        });
    }

    /// Appends a delete, extending the last record when only the prefix differs.
    pub fn push_del(
        out: &mut Vec<Self>,
        kind: Kind,
        prefix: IpNet,
        origin: Option<&str>,
        source: Option<u32>,
    ) {
        if let Some(Self::DelMany {
            kind: k,
            prefixes,
            origin: o,
            source: s,
        }) = out.last_mut()
            && *k == kind
            && o.as_deref() == origin
            && *s == source
        {
            prefixes.push(prefix);
            return;
        }
        out.push(Self::DelMany {
            kind,
            prefixes: vec![prefix],
            origin: origin.map(str::to_owned),
            source,
        });
    }
}

/// Records as journal lines (so a large batch can be encoded off the
/// critical path while the kernel is written).
pub fn encode(records: &[Record]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.push(b'\n');
    }
    Ok(out)
}

const SNAPSHOT: &str = "decisions.snapshot.jsonl";
const JOURNAL: &str = "decisions.journal.jsonl";

/// The open journal.
pub struct Journal {
    dir: PathBuf,
    file: BufWriter<File>,
    /// Lines appended since the last snapshot.
    pub appended: usize,
    /// Lines in the last snapshot.
    pub snapshot_lines: usize,
}

/// What replaying found.
pub struct Replay {
    pub records: Vec<Record>,
    /// Lines that could not be parsed (skipped).
    pub damaged: usize,
}

fn read_lines(path: &Path, out: &mut Vec<Record>, damaged: &mut usize) -> io::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(f).lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                *damaged += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => out.push(r),
            Err(_) => *damaged += 1,
        }
    }
    Ok(())
}

impl Journal {
    /// Opens (creating) the state directory and replays what it holds.
    pub fn open(dir: &Path) -> io::Result<(Self, Replay)> {
        fs::create_dir_all(dir)?;
        let mut records = Vec::new();
        let mut damaged = 0;
        read_lines(&dir.join(SNAPSHOT), &mut records, &mut damaged)?;
        let snapshot_lines = records.len();
        read_lines(&dir.join(JOURNAL), &mut records, &mut damaged)?;
        let appended = records.len() - snapshot_lines;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))?;
        // A torn last line must not swallow the next record: end it.
        if let Ok(bytes) = fs::read(dir.join(JOURNAL))
            && bytes.last().is_some_and(|b| *b != b'\n')
        {
            file.write_all(b"\n")?;
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                file: BufWriter::with_capacity(1 << 20, file),
                appended,
                snapshot_lines,
            },
            Replay { records, damaged },
        ))
    }

    /// Appends records and syncs them to disk.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let bytes = encode(records)?;
        self.append_encoded(&bytes, records.len())
    }

    /// Appends records already [`encode`]d, and syncs them to disk.
    pub fn append_encoded(&mut self, bytes: &[u8], records: usize) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        self.appended += records;
        Ok(())
    }

    /// True when the journal has grown enough that compaction pays off.
    pub const fn wants_compaction(&self) -> bool {
        self.appended > 100_000 && self.appended > self.snapshot_lines
    }

    /// Replaces the snapshot with `live` and empties the journal.
    pub fn compact(&mut self, live: impl Iterator<Item = Record>) -> io::Result<()> {
        let tmp = self.dir.join(format!("{SNAPSHOT}.tmp"));
        let mut n = 0;
        {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
            for r in live {
                serde_json::to_writer(&mut w, &r)?;
                w.write_all(b"\n")?;
                n += 1;
            }
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        // Only now is the journal redundant.
        self.file.flush()?;
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.join(JOURNAL))?;
        f.sync_all()?;
        let f = OpenOptions::new()
            .append(true)
            .open(self.dir.join(JOURNAL))?;
        self.file = BufWriter::with_capacity(1 << 20, f);
        self.appended = 0;
        self.snapshot_lines = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(p: &str) -> Record {
        Record::Put {
            kind: Kind::Block,
            prefix: p.parse().unwrap(),
            origin: "manual".into(),
            source: 0,
            reason: "r".into(),
            created: 1,
            expires: 0,
        }
    }

    #[test]
    fn replays_snapshot_then_journal_and_skips_damage() {
        let dir = std::env::temp_dir().join(format!("enforcer-journal-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        {
            let (mut j, r) = Journal::open(&dir).unwrap();
            assert!(r.records.is_empty());
            j.append(&[put("198.18.0.0/24"), put("198.18.1.0/24")])
                .unwrap();
            j.compact([put("198.18.0.0/24")].into_iter()).unwrap();
            j.append(&[put("198.18.2.0/24")]).unwrap();
        }
        // A torn last line, as after a crash mid-write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(JOURNAL))
            .unwrap();
        f.write_all(b"{\"op\":\"put\",\"kind\":\"blo").unwrap();
        drop(f);
        {
            let (mut j, r) = Journal::open(&dir).unwrap();
            assert_eq!(r.records, vec![put("198.18.0.0/24"), put("198.18.2.0/24")]);
            assert_eq!(r.damaged, 1);
            j.append(&[put("198.18.3.0/24")]).unwrap();
        }
        let (_, r) = Journal::open(&dir).unwrap();
        assert_eq!(
            r.records.len(),
            3,
            "the record after the torn line survives"
        );
        assert_eq!(r.damaged, 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
