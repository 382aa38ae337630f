//! Key and value encodings of the `entries` database.
//!
//! Key: `parent` `\0` `name`, where `parent` is the share path of the
//! directory holding the entry (`""` for a share itself). Names never contain
//! `\0` or `/`, so every key splits back into exactly one (parent, name).
//!
//! Sorting bytewise gives every range a listing needs:
//! - the children of `d`, sorted by name: keys starting with `d\0`;
//! - everything below `d`: keys starting with `d\0`, then keys starting with
//!   `d/` (two contiguous ranges; `d\0` sorts before `d/`). A prefix never
//!   matches a longer sibling: `music\0`/`music/` do not match `musicals`.
//!
//! Value (26 bytes, little-endian): `version:u8 = 1`, `kind:u8` (0 file,
//! 1 dir), `size:u64` (dirs: total below), `mtime_ns:i64`, `count:u64` (dirs:
//! entries below; files: 0). The version byte leaves room for more fields
//! (a content hash lives in its own database, keyed by path, size and mtime).

use hdp_proto::api::{Entry, EntryKind};

pub const VALUE_LEN: usize = 26;
const VALUE_VERSION: u8 = 1;

/// What the index knows about one file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryValue {
    pub kind: EntryKind,
    pub size: u64,
    pub mtime_ns: i64,
    pub count: u64,
}

impl EntryValue {
    pub fn encode(&self) -> [u8; VALUE_LEN] {
        let mut b = [0u8; VALUE_LEN];
        b[0] = VALUE_VERSION;
        b[1] = match self.kind {
            EntryKind::File => 0,
            EntryKind::Dir => 1,
        };
        b[2..10].copy_from_slice(&self.size.to_le_bytes());
        b[10..18].copy_from_slice(&self.mtime_ns.to_le_bytes());
        b[18..26].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    /// `None` for a value this version does not understand.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < VALUE_LEN || b[0] != VALUE_VERSION {
            return None;
        }
        let kind = match b[1] {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            _ => return None,
        };
        let u64_at = |i: usize| b.get(i..i + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        Some(EntryValue { kind, size: u64_at(2)?, mtime_ns: u64_at(10)? as i64, count: u64_at(18)? })
    }
}

/// The key of `name` inside directory `parent`.
pub fn entry_key(parent: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(parent.len() + 1 + name.len());
    k.extend_from_slice(parent.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The key of the entry at share path `path` (not the root).
pub fn path_key(path: &str) -> Vec<u8> {
    match path.rsplit_once('/') {
        Some((parent, name)) => entry_key(parent, name),
        None => entry_key("", path),
    }
}

/// Keys of the children of `dir` start with this.
pub fn children_prefix(dir: &str) -> Vec<u8> {
    let mut k = dir.as_bytes().to_vec();
    k.push(0);
    k
}

/// Keys of entries two or more levels below `dir` (not the root) start with this.
pub fn deeper_prefix(dir: &str) -> Vec<u8> {
    let mut k = dir.as_bytes().to_vec();
    k.push(b'/');
    k
}

/// The smallest key greater than every key starting with `prefix`.
/// `prefix` always ends in `\0` or `/`, so incrementing its last byte works.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Splits a key into `(parent, name)`; `None` for a malformed key.
pub fn split_key(key: &[u8]) -> Option<(&str, &str)> {
    let nul = key.iter().position(|&b| b == 0)?;
    let parent = std::str::from_utf8(&key[..nul]).ok()?;
    let name = std::str::from_utf8(&key[nul + 1..]).ok()?;
    Some((parent, name))
}

/// Joins a parent share path and a name.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}/{name}") }
}

/// The API entry for a key/value pair; `None` if either is malformed.
pub fn to_entry(key: &[u8], value: &[u8]) -> Option<Entry> {
    let (parent, name) = split_key(key)?;
    let v = EntryValue::decode(value)?;
    Some(Entry {
        path: join(parent, name),
        name: name.to_owned(),
        kind: v.kind,
        size: v.size,
        mtime: v.mtime_ns.div_euclid(1_000_000_000),
        mtime_ns: v.mtime_ns,
        entries: (v.kind == EntryKind::Dir).then_some(v.count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip() {
        let v = EntryValue { kind: EntryKind::Dir, size: 1 << 40, mtime_ns: -5, count: 7 };
        assert_eq!(EntryValue::decode(&v.encode()), Some(v));
        assert_eq!(EntryValue::decode(&[1, 0, 0]), None);
        let mut bad = v.encode();
        bad[0] = 9;
        assert_eq!(EntryValue::decode(&bad), None);
    }

    #[test]
    fn prefixes_respect_components() {
        let music = children_prefix("music");
        let deeper = deeper_prefix("music");
        let sibling = entry_key("musicals", "x");
        assert!(!sibling.starts_with(&music) && !sibling.starts_with(&deeper));
        assert!(entry_key("music", "a").starts_with(&music));
        assert!(entry_key("music/a", "b").starts_with(&deeper));
        // Children sort before deeper entries, and both before the end bounds.
        assert!(music < deeper);
        assert!(prefix_end(&music) <= deeper);
        assert_eq!(path_key("music/a/b"), entry_key("music/a", "b"));
        assert_eq!(path_key("music"), entry_key("", "music"));
        assert_eq!(split_key(&entry_key("a/b", "c")), Some(("a/b", "c")));
    }
}
