//! pgBackRest's info-file container (`archive.info`, `backup.info`, `backup.manifest`): `[section]` lines and
//! `key=<JSON value>` lines, with a SHA-1 self-checksum over a JSON rendering of the file
//! (pgbackrest-format.md §2). Written by hand because the format is neither INI (keys may hold `=`, values
//! are JSON, sections repeat) nor JSON, and the checksum is over the raw value text exactly as stored.

use serde::de::DeserializeOwned;
use sha1::{Digest as _, Sha1};

/// The only repository format pgBackRest has written since 1.00.
pub(crate) const REPOSITORY_FORMAT: u64 = 5;

/// One parsed info file: sections in file order (a name may occur twice: `[backrest]` opens and closes a
/// file), each with its keys and raw JSON values in file order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ini {
    sections: Vec<Section>,
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    entries: Vec<(String, String)>,
}

impl Ini {
    /// Parses `text` (strict: lines are not trimmed, blank lines are skipped, no comments). A key may
    /// contain `=`: the line is split at the first `=` after which the rest is valid JSON.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut sections: Vec<Section> = Vec::new();
        for (n, line) in text.split('\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            if line.len() >= 2 && line.starts_with('[') && line.ends_with(']') {
                sections.push(Section {
                    name: line[1..line.len() - 1].to_owned(),
                    entries: Vec::new(),
                });
                continue;
            }
            let Some(section) = sections.last_mut() else {
                return Err(format!("line {}: a key before any [section]", n + 1));
            };
            let split = line
                .match_indices('=')
                .map(|(i, _)| i)
                .find(|&i| i > 0 && is_json(&line[i + 1..]));
            let Some(i) = split else {
                return Err(format!("line {}: not key=<JSON value>", n + 1));
            };
            section
                .entries
                .push((line[..i].to_owned(), line[i + 1..].to_owned()));
        }
        Ok(Self { sections })
    }

    /// Checks `[backrest] backrest-checksum` against the content and `backrest-format` against 5.
    pub(crate) fn verify(&self) -> Result<(), String> {
        let stored = self
            .get_json::<String>("backrest", "backrest-checksum")?
            .ok_or("no backrest-checksum")?;
        let computed = self.checksum();
        if stored != computed {
            return Err(format!(
                "checksum mismatch: the file says {stored}, its content hashes to {computed}"
            ));
        }
        match self.get_json::<u64>("backrest", "backrest-format")? {
            Some(REPOSITORY_FORMAT) => Ok(()),
            Some(f) => Err(format!(
                "repository format {f}, this reader knows format {REPOSITORY_FORMAT}"
            )),
            None => Err("no backrest-format".into()),
        }
    }

    /// SHA-1 (hex) of the JSON rendering pgBackRest hashes: `{"<section>":{"<key>":<raw value>,…},…}` in
    /// file order, without `[backrest] backrest-checksum` itself.
    pub(crate) fn checksum(&self) -> String {
        let mut h = Sha1::new();
        let mut last: Option<&str> = None;
        h.update(b"{");
        for s in &self.sections {
            for (k, v) in &s.entries {
                if s.name == "backrest" && k == "backrest-checksum" {
                    continue;
                }
                if last == Some(s.name.as_str()) {
                    h.update(b",");
                } else {
                    if last.is_some() {
                        h.update(b"},");
                    }
                    h.update(b"\"");
                    h.update(s.name.as_bytes());
                    h.update(b"\":{");
                    last = Some(&s.name);
                }
                h.update(json_key(k).as_bytes());
                h.update(b":");
                h.update(v.as_bytes());
            }
        }
        h.update(b"}}");
        hex(&h.finalize())
    }

    /// The raw JSON of `key` in the first section named `section` holding it.
    pub(crate) fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .filter(|s| s.name == section)
            .flat_map(|s| s.entries.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` of `section` decoded as `T`; `None` when absent.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        section: &str,
        key: &str,
    ) -> Result<Option<T>, String> {
        self.get(section, key)
            .map(|raw| serde_json::from_str(raw).map_err(|e| format!("[{section}] {key}: {e}")))
            .transpose()
    }

    /// Every key and raw value of every section named `name`, in file order.
    pub(crate) fn section<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.sections
            .iter()
            .filter(move |s| s.name == name)
            .flat_map(|s| s.entries.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn is_json(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// A key as pgBackRest quotes it for the checksum: only `"`, `\`, LF, CR, TAB, BS and FF are escaped; every
/// other byte is copied as is.
fn json_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len() + 2);
    out.push('"');
    for c in k.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
