//! Configuration errors that point at the file, line, column and key.

use std::{fmt, ops::Range, path::Path};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted key path, e.g. `blocklist.prefixes[2]` (empty when unknown).
    pub key: String,
    /// What was wrong, including what was found.
    pub message: String,
    /// What is expected instead (empty when the message says it).
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if !self.expected.is_empty() {
            write!(f, "; expected {}", self.expected)?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A file's text, for turning byte spans into lines, columns and keys.
pub struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    /// Byte offsets where lines start, built on first use: positions are
    /// asked for every route (to name where a duplicate was first defined),
    /// and counting lines from the top each time made a 1.6 MB policy with
    /// 1,000 routes take seconds to validate.
    line_starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            line_starts: std::cell::OnceCell::new(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // The last line start at or before `offset` (there is always one: 0).
        let line = starts.partition_point(|&s| s <= offset);
        let line_start = starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// The dotted key a span sits under: the nearest `[table]` header above it
    /// and the `key =` on its line (best effort, for messages only).
    pub fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = &self.text[line_start..line_end];
        // On a table header, the key is the table.
        let t = line.trim();
        if t.starts_with('[') {
            return t
                .trim_matches(|c| c == '[' || c == ']')
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_end_matches(']')
                .trim()
                .to_owned();
        }
        let mut table = String::new();
        for l in self.text[..line_start].lines() {
            let t = l.trim();
            if t.starts_with('[') && !t.starts_with("[[") && t.ends_with(']') {
                table = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            } else if t.starts_with("[[") && t.ends_with("]]") {
                table = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            }
        }
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.contains(' '))
            .unwrap_or_default();
        match (table.is_empty(), key.is_empty()) {
            (true, _) => key,
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }

    pub fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.position(span.start);
        ConfigError {
            file: self.file.display().to_string(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            expected: expected.into(),
        }
    }

    /// Converts a TOML parse or type error.
    pub fn from_toml(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let key = self.key_at(span.start);
        // toml's messages are complete sentences; keep them, minus trailing newlines.
        let message = e.message().trim().to_owned();
        self.error(span, key, message, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_keys() {
        let text = "[agent]\ninterfaces = [\"eth0\"]\n\n[blocklist]\nprefixes = [\"x\"]\n";
        let s = Source::new(Path::new("/etc/enforcer/enforcer.toml"), text);
        let off = text.find("\"x\"").unwrap();
        assert_eq!(s.position(off), (5, 13));
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(text.find("\n").unwrap()), (1, 8));
        assert_eq!(s.position(text.find("\n").unwrap() + 1), (2, 1));
        assert_eq!(s.position(text.len() + 10), (6, 1));
        assert_eq!(s.key_at(off), "blocklist.prefixes");
        assert_eq!(s.key_at(text.find("\"eth0").unwrap()), "agent.interfaces");
        let e = s.error(
            off..off + 3,
            "blocklist.prefixes[0]",
            "found `x`",
            "a CIDR prefix",
        );
        assert_eq!(
            e.to_string(),
            "/etc/enforcer/enforcer.toml:5:13: `blocklist.prefixes[0]`: found `x`; expected a CIDR prefix"
        );
    }
}
