//! Share paths as the browser shows them: `share/dir/sub`, with `""` for the
//! list of shares. Pure Rust, unit-tested on the host.

/// One step of the breadcrumb trail: what to show and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crumb {
    pub label: String,
    pub path: String,
}

/// The trail from the first share component down to `path` itself
/// (the root, `""`, is not included: the UI shows it as its own first crumb).
pub fn breadcrumbs(path: &str) -> Vec<Crumb> {
    let mut crumbs = Vec::new();
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        crumbs.push(Crumb { label: part.to_string(), path: so_far.clone() });
    }
    crumbs
}

/// The directory holding `path`, `""` for a share itself.
pub fn parent(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// `path` split into the directory part with its trailing slash and the last
/// component, for showing search results as `dir/sub/` + **name**.
pub fn split_last(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => path.split_at(i + 1),
        None => ("", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crumbs() {
        assert!(breadcrumbs("").is_empty());
        let c = breadcrumbs("music/jazz/1959");
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.label.as_str(), c.path.as_str())).collect();
        assert_eq!(got, [("music", "music"), ("jazz", "music/jazz"), ("1959", "music/jazz/1959")]);
        // Stray slashes do not make empty crumbs.
        assert_eq!(breadcrumbs("/music//jazz/").len(), 2);
    }

    #[test]
    fn parents() {
        assert_eq!(parent(""), "");
        assert_eq!(parent("music"), "");
        assert_eq!(parent("music/jazz"), "music");
        assert_eq!(parent("music/jazz/1959/"), "music/jazz");
    }

    #[test]
    fn split() {
        assert_eq!(split_last("music"), ("", "music"));
        assert_eq!(split_last("music/jazz/a.flac"), ("music/jazz/", "a.flac"));
    }
}
