//! Validation of share paths.
//!
//! A share path names an entry in the shared namespace: its first component is
//! a share name, the rest is the path inside that share, separated by `/`.
//! The empty path is the root, whose children are the shares.
//!
//! Paths arrive from browsers, the CLI and peers, so they are hostile until
//! [`SharePath::parse`] has accepted them. It rejects, with a reason:
//! absolute paths, `.` and `..` components, empty components (`a//b`),
//! backslashes (Windows separators smuggled past a `/` check), NUL and other
//! control characters, and names or paths over the length limits.

use std::fmt;

/// Longest accepted share path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest accepted single component, in bytes (the common filesystem limit).
pub const MAX_COMPONENT_LEN: usize = 255;

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
    #[error("path may not contain a backslash")]
    Backslash,
    #[error("path may not contain NUL or control characters")]
    ControlChar,
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

/// Validates one path component (a file, directory or share name).
pub fn validate_component(c: &str) -> Result<(), PathError> {
    if c.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if c == "." || c == ".." {
        return Err(PathError::DotComponent);
    }
    if c.len() > MAX_COMPONENT_LEN {
        return Err(PathError::ComponentTooLong);
    }
    if c.contains('\\') {
        return Err(PathError::Backslash);
    }
    if c.contains('/') {
        return Err(PathError::EmptyComponent);
    }
    if c.chars().any(|ch| ch.is_control()) {
        return Err(PathError::ControlChar);
    }
    Ok(())
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
            ("a\\..\\b", Backslash),
            ("..\\x", Backslash),
            ("a/b\0c", ControlChar),
            ("a/\nb", ControlChar),
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
