//! Validation of share paths, and how file names that are not UTF-8 travel.
//!
//! A share path names an entry in the shared namespace: its first component is
//! a share name, the rest is the path inside that share, separated by `/`.
//! The empty path is the root, whose children are the shares.
//!
//! Paths arrive from browsers, the CLI and peers, so they are hostile until
//! [`SharePath::parse`] has accepted them. It refuses only what cannot name a
//! file on a POSIX filesystem or would leave the share: absolute paths, `.`
//! and `..` components, empty components (`a//b`), NUL, and names or paths
//! over the length limits. Everything else a Linux filesystem can hold is a
//! valid name: control characters, backslashes, leading or trailing spaces
//! and dots, `CON.txt`. Showing such names to people is [`crate::fmt::shown`]'s
//! job, not a reason to refuse them.
//!
//! # Names that are not UTF-8
//! Paths are UTF-8 strings on the wire and in the API, but a Linux name is
//! any bytes. A byte `b` (0x80–0xFF) that is not part of valid UTF-8 is
//! written as the code point U+EF00 + `b` (the block U+EF80–U+EFFF, in the
//! Private Use Area). A name that really contains a code point of that block
//! has each of its three UTF-8 bytes escaped the same way, so
//! [`decode_name`] (escape → byte, anything else → its UTF-8) gives back the
//! exact bytes of every name [`encode_name`] produced. Escapes only ever
//! stand for bytes ≥ 0x80, so they can never smuggle in `/`, NUL or a dot.

use std::borrow::Cow;
use std::fmt;

/// Longest accepted share path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest accepted single component, in bytes of the name on disk (after
/// [`decode_name`]): Linux's `NAME_MAX`.
pub const MAX_COMPONENT_LEN: usize = 255;
/// The escape block for bytes that are not UTF-8: byte `b` is `ESCAPE_BASE + b`.
pub const ESCAPE_BASE: u32 = 0xEF00;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("path must be relative to the shares (it starts with '/')")]
    Absolute,
    #[error("path has an empty component ('//')")]
    EmptyComponent,
    #[error("path may not contain '.' or '..' components")]
    DotComponent,
    #[error("path may not contain a NUL byte")]
    Nul,
    #[error("a path component is longer than {MAX_COMPONENT_LEN} bytes")]
    ComponentTooLong,
}

/// A validated, normalised share path (`share/dir/file`), or the root (`""`).
///
/// A single trailing `/` is accepted and dropped, so `music/` and `music` are
/// the same path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SharePath(String);

impl SharePath {
    /// The root of the namespace: its children are the shares.
    pub fn root() -> Self {
        SharePath(String::new())
    }

    /// Validates `raw` as a share path.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if raw.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        if trimmed.is_empty() {
            return if raw.is_empty() { Ok(Self::root()) } else { Err(PathError::Absolute) };
        }
        for component in trimmed.split('/') {
            validate_component(component)?;
        }
        Ok(SharePath(trimmed.to_owned()))
    }

    /// Joins a validated path and one more component.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        validate_component(name)?;
        let joined = if self.0.is_empty() { name.to_owned() } else { format!("{}/{}", self.0, name) };
        if joined.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        Ok(SharePath(joined))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The share this path lies in, or `None` for the root.
    pub fn share(&self) -> Option<&str> {
        self.components().next()
    }

    /// The path inside the share (`""` for the share itself or the root).
    pub fn in_share(&self) -> &str {
        match self.0.split_once('/') {
            Some((_, rest)) => rest,
            None => "",
        }
    }

    /// `(parent, name)`; `None` for the root.
    pub fn split_last(&self) -> Option<(&str, &str)> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", self.0.as_str()),
        })
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    pub fn depth(&self) -> usize {
        self.components().count()
    }
}

impl fmt::Display for SharePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates one path component (a file, directory or share name): not
/// empty, not `.` or `..`, no `/` or NUL, at most [`MAX_COMPONENT_LEN`]
/// bytes once decoded.
pub fn validate_component(c: &str) -> Result<(), PathError> {
    if c.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if c == "." || c == ".." {
        return Err(PathError::DotComponent);
    }
    if c.contains('/') {
        return Err(PathError::EmptyComponent);
    }
    if c.contains('\0') {
        return Err(PathError::Nul);
    }
    if decoded_len(c) > MAX_COMPONENT_LEN {
        return Err(PathError::ComponentTooLong);
    }
    Ok(())
}

/// Whether `c` stands for one byte of a name that is not UTF-8.
pub fn is_escape(c: char) -> bool {
    (ESCAPE_BASE + 0x80..=ESCAPE_BASE + 0xFF).contains(&u32::from(c))
}

/// The length in bytes of `name` on disk (each escape is one byte).
pub fn decoded_len(name: &str) -> usize {
    // An escape is 3 bytes of UTF-8 for 1 byte on disk.
    name.len() - 2 * name.chars().filter(|&c| is_escape(c)).count()
}

/// The wire form of a name (or a `/`-separated path) on disk: itself when it
/// is UTF-8 without code points of the escape block, escaped otherwise.
pub fn encode_name(raw: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(raw)
        && !s.chars().any(is_escape)
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(raw.len() + raw.len() / 2);
    let escape = |out: &mut String, b: u8| out.push(char::from_u32(ESCAPE_BASE + u32::from(b)).unwrap_or('\u{fffd}'));
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                for &b in c.encode_utf8(&mut [0; 4]).as_bytes() {
                    escape(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            escape(&mut out, b);
        }
    }
    Cow::Owned(out)
}

/// The bytes on disk of a name (or path) in wire form: the inverse of
/// [`encode_name`]. Any string decodes; `/` and NUL pass through unchanged.
pub fn decode_name(name: &str) -> Cow<'_, [u8]> {
    if !name.chars().any(is_escape) {
        return Cow::Borrowed(name.as_bytes());
    }
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        if is_escape(c) {
            // In the block, so the difference is 0x80..=0xFF.
            out.push((u32::from(c) - ESCAPE_BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        assert!(SharePath::parse("").unwrap().is_root());
        let p = SharePath::parse("music/Ærø Ünïcode/曲.flac").unwrap();
        assert_eq!(p.share(), Some("music"));
        assert_eq!(p.in_share(), "Ærø Ünïcode/曲.flac");
        assert_eq!(p.split_last(), Some(("music/Ærø Ünïcode", "曲.flac")));
        assert_eq!(p.depth(), 3);
        assert_eq!(SharePath::parse("music/").unwrap().as_str(), "music");
        assert_eq!(SharePath::parse("music").unwrap().split_last(), Some(("", "music")));
        // Dots inside names are fine.
        assert!(SharePath::parse("a/..b/c..").is_ok());
        assert!(SharePath::parse("a/.hidden").is_ok());
        // Legal on Linux, so legal here: control characters, backslashes,
        // Windows' reserved names, trailing dots and spaces.
        for ok in ["a/line\nbreak", "a/tab\there", "a/back\\slash", "a/CON.txt", "a/nul", "a/end. ", "a/ -x-", "a/%#?"]
        {
            assert_eq!(SharePath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn names_that_are_not_utf8_round_trip() {
        let cases: &[&[u8]] = &[
            b"plain.txt",
            b"caf\xe9.mp3",                // Latin-1
            b"\xff\xfe",                   // not UTF-8 at all
            b"ok \xc3\xa9 then \xc3 cut",  // valid, then a cut sequence
            "\u{ef80}\u{efff}".as_bytes(), // real code points of the escape block
            "\u{eeff}\u{f000}".as_bytes(), // its neighbours stay as they are
            b"a/\x80/b",                   // a path: '/' passes through
        ];
        for raw in cases {
            let wire = encode_name(raw);
            assert_eq!(&*decode_name(&wire), *raw, "{wire:?}");
            assert_eq!(decoded_len(&wire), raw.len(), "{wire:?}");
        }
        assert!(matches!(encode_name(b"plain"), Cow::Borrowed("plain")));
        assert_eq!(encode_name(b"caf\xe9"), "caf\u{efe9}");
        assert_eq!(encode_name("\u{ef80}".as_bytes()), "\u{efee}\u{efbe}\u{ef80}");
        assert_eq!(encode_name("\u{eeff}".as_bytes()), "\u{eeff}");
        // A 255-byte name that is not UTF-8 is 765 bytes on the wire and valid.
        let wire = encode_name(&[0xff; MAX_COMPONENT_LEN]);
        assert_eq!(wire.len(), 3 * MAX_COMPONENT_LEN);
        assert!(validate_component(&wire).is_ok());
        assert_eq!(validate_component(&encode_name(&[0xff; MAX_COMPONENT_LEN + 1])), Err(PathError::ComponentTooLong));
        // Escapes never decode to '/', NUL or '.'.
        for b in 0x80..=0xffu32 {
            let c = char::from_u32(ESCAPE_BASE + b).unwrap();
            assert!(decode_name(&c.to_string()).iter().all(|&x| x >= 0x80));
        }
    }

    #[test]
    fn rejects_traversal_and_tricks() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("/etc/passwd", Absolute),
            ("/", Absolute),
            ("//", Absolute),
            ("..", DotComponent),
            ("a/../../etc", DotComponent),
            ("a/./b", DotComponent),
            ("a//b", EmptyComponent),
            ("a/b//", EmptyComponent),
            ("a/b\0c", Nul),
        ];
        for (raw, want) in cases {
            assert_eq!(SharePath::parse(raw).as_ref(), Err(want), "{raw:?}");
        }
        let long = "a".repeat(MAX_COMPONENT_LEN + 1);
        assert_eq!(SharePath::parse(&long), Err(ComponentTooLong));
        let very_long = "a/".repeat(MAX_PATH_LEN);
        assert_eq!(SharePath::parse(&very_long), Err(TooLong));
    }

    #[test]
    fn join_validates() {
        let root = SharePath::root();
        let m = root.join("music").unwrap();
        assert_eq!(m.as_str(), "music");
        assert_eq!(m.join("x").unwrap().as_str(), "music/x");
        assert!(m.join("..").is_err());
        assert!(m.join("a/b").is_err());
        assert!(m.join("").is_err());
    }
}
