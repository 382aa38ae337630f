//! HTTP `Range` headers (RFC 9110 §14): parsing what a player asks for,
//! and applying it to a file once its size is known. Sans-IO and total:
//! any header text gives an answer, never a panic.
//!
//! One range, `bytes=a-b`, `bytes=a-` or `bytes=-n`, is honoured; the end is
//! clamped to the file. Several ranges, another unit or bad syntax mean the
//! whole file. A start past the end is unsatisfiable (416); an empty file is
//! always whole, since media elements ask for `bytes=0-`.

/// What a `Range` header asks for, before the file's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range, or one we ignore (several ranges, another unit, bad syntax).
    Whole,
    /// `bytes=a-`.
    From(u64),
    /// `bytes=a-b` (b ≥ a, inclusive).
    FromTo(u64, u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// A [`RangeRequest`] applied to a file of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// 200 with every byte.
    Whole,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Digits as a number, saturating at `u64::MAX` (a last position past any
/// file just means "to the end").
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

/// Parses a `Range` header; see the module docs for what is ignored.
pub fn parse_range(header: Option<&str>) -> RangeRequest {
    let Some((unit, set)) = header.and_then(|h| h.split_once('=')) else { return RangeRequest::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return RangeRequest::Whole };
    let (first, last) = (first.trim(), last.trim());
    match (digits(first), digits(last)) {
        (None, Some(n)) if first.is_empty() => RangeRequest::Suffix(n),
        (Some(a), None) if last.is_empty() => RangeRequest::From(a),
        (Some(a), Some(b)) if b >= a => RangeRequest::FromTo(a, b),
        _ => RangeRequest::Whole,
    }
}

impl RangeRequest {
    /// Applies the request to a file of `size` bytes.
    pub fn resolve(self, size: u64) -> Resolved {
        let last = size.checked_sub(1);
        match (self, last) {
            // An empty file has no byte to range over; browsers' media
            // elements always ask `bytes=0-`, so they get the (empty) whole.
            (RangeRequest::Whole, _) | (_, None) => Resolved::Whole,
            (RangeRequest::From(a), Some(last)) if a <= last => Resolved::Partial { start: a, end: last },
            (RangeRequest::FromTo(a, b), Some(last)) if a <= last => Resolved::Partial { start: a, end: b.min(last) },
            (RangeRequest::Suffix(n), Some(last)) if n > 0 => {
                Resolved::Partial { start: size - n.min(size), end: last }
            }
            _ => Resolved::Unsatisfiable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        use RangeRequest::*;
        for (h, want) in [
            (None, Whole),
            (Some("bytes=0-499"), FromTo(0, 499)),
            (Some("bytes=500-"), From(500)),
            (Some("bytes=-500"), Suffix(500)),
            (Some("Bytes = 7 - 9"), FromTo(7, 9)),
            (Some("bytes=5-5"), FromTo(5, 5)),
            (Some("bytes=0-99999999999999999999999"), FromTo(0, u64::MAX)),
            (Some("bytes=99999999999999999999999-"), From(u64::MAX)),
            (Some("bytes=-99999999999999999999999"), Suffix(u64::MAX)),
            // Ignored: several ranges, other units, nonsense.
            (Some("bytes=0-1,5-6"), Whole),
            (Some("bytes=0-1, -5"), Whole),
            (Some("items=0-1"), Whole),
            (Some("bytes=9-5"), Whole),
            (Some("bytes=-"), Whole),
            (Some("bytes="), Whole),
            (Some("bytes=a-b"), Whole),
            (Some("bytes=+1-2"), Whole),
            (Some("bytes=1-2-3"), Whole),
            (Some("bytes 0-1"), Whole),
            (Some(""), Whole),
        ] {
            assert_eq!(parse_range(h), want, "{h:?}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        use RangeRequest::*;
        use Resolved::{Partial, Unsatisfiable};
        let p = |start, end| Partial { start, end };
        assert_eq!(Whole.resolve(10), Resolved::Whole);
        assert_eq!(Whole.resolve(0), Resolved::Whole);
        assert_eq!(FromTo(0, 4).resolve(10), p(0, 4));
        assert_eq!(FromTo(5, 100).resolve(10), p(5, 9));
        assert_eq!(FromTo(9, 9).resolve(10), p(9, 9));
        assert_eq!(FromTo(10, 12).resolve(10), Unsatisfiable);
        assert_eq!(From(3).resolve(10), p(3, 9));
        assert_eq!(From(0).resolve(10), p(0, 9));
        assert_eq!(From(10).resolve(10), Unsatisfiable);
        assert_eq!(From(0).resolve(0), Resolved::Whole);
        assert_eq!(Suffix(3).resolve(10), p(7, 9));
        assert_eq!(Suffix(10).resolve(10), p(0, 9));
        assert_eq!(Suffix(50).resolve(10), p(0, 9));
        assert_eq!(Suffix(u64::MAX).resolve(10), p(0, 9));
        assert_eq!(Suffix(0).resolve(10), Unsatisfiable);
        assert_eq!(Suffix(5).resolve(0), Resolved::Whole);
        assert_eq!(FromTo(0, u64::MAX).resolve(u64::MAX), p(0, u64::MAX - 1));
    }
}
