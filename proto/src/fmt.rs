//! Turning numbers and paths into words for people: sizes, counts, dates,
//! durations, peer ids, breadcrumbs. Shared by the CLI and the web UI; the caller supplies the clock
//! and time zone.

/// Bytes in binary units: `0 B`, `1023 B`, `1.5 KiB`, `12.3 MiB`, `512 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.5 would print as "1024", so it already belongs to the next unit.
    while value >= 1023.5 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 99.95 { format!("{value:.1} {}", UNITS[unit]) } else { format!("{value:.0} {}", UNITS[unit]) }
}

/// A count with thousands separators: `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 file`, `2 files`, `1,024 files`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", format_count(n), if n == 1 { one } else { many })
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01
/// (proleptic Gregorian calendar, any sign).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small by construction (1..=31 and 1..=12).
    (year, month as u32, day as u32)
}

/// `2024-03-05 14:07` for Unix seconds shifted by `utc_offset_secs`
/// (east of UTC is positive, so UTC+2 is `7200`).
pub fn format_datetime(unix: i64, utc_offset_secs: i64) -> String {
    let local = unix.saturating_add(utc_offset_secs);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", secs / 3_600, secs % 3_600 / 60)
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago`; `None` from 30 days on
/// (or for the future), where a date says more.
pub fn format_ago(elapsed_secs: i64) -> Option<String> {
    match elapsed_secs {
        s if s < 0 => None,
        0..60 => Some("just now".to_string()),
        60..3_600 => Some(format!("{} min ago", elapsed_secs / 60)),
        3_600..86_400 => Some(format!("{} h ago", elapsed_secs / 3_600)),
        86_400..172_800 => Some("yesterday".to_string()),
        172_800..2_592_000 => Some(format!("{} days ago", elapsed_secs / 86_400)),
        _ => None,
    }
}

/// `850 ms`, `3.2 s`, `2 min 5 s`, `1 h 4 min`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        return format!("{:.1} s", ms as f64 / 1_000.0);
    }
    let secs = ms / 1_000;
    if secs < 3_600 {
        return format!("{} min {} s", secs / 60, secs % 60);
    }
    format!("{} h {} min", secs / 3_600, secs % 3_600 / 60)
}

/// A long id cut to its first 8 and last 4 characters: `abcdefgh…wxyz`.
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 14 {
        return id.to_string();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

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

/// `path` split into the directory part with its trailing slash and the last
/// component, for showing search results as `dir/sub/` + **name**.
pub fn split_dir_name(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => path.split_at(i + 1),
        None => ("", path),
    }
}

/// A name or path as people see it (CLI, UI, logs): control characters as
/// `\n`, `\t`, `\r` or `\u{1b}`, bytes that are not UTF-8 (see
/// [`crate::path`]) as `\xe9`; everything else unchanged. Only for showing:
/// the name itself is kept byte for byte.
pub fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    let plain = |c: char| !c.is_control() && !crate::path::is_escape(c);
    if name.chars().all(plain) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if crate::path::is_escape(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c) - crate::path::ESCAPE_BASE);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1), "1 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1.0 KiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(100 * 1024), "100 KiB");
        assert_eq!(format_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(format_size(12_900_000), "12.3 MiB");
        assert_eq!(format_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(format_size(512 * 1024 * 1024 * 1024), "512 GiB");
        assert_eq!(format_size(3 << 40), "3.0 TiB");
        assert_eq!(format_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn counts() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000), "1,000");
        assert_eq!(format_count(123_456), "123,456");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(plural(1, "file", "files"), "1 file");
        assert_eq!(plural(0, "file", "files"), "0 files");
        assert_eq!(plural(2_048, "file", "files"), "2,048 files");
    }

    #[test]
    fn datetimes() {
        assert_eq!(format_datetime(0, 0), "1970-01-01 00:00");
        assert_eq!(format_datetime(1_700_000_000, 0), "2023-11-14 22:13");
        // Shifted across midnight and a year boundary.
        assert_eq!(format_datetime(1_704_067_140, 3_600), "2024-01-01 00:59");
        assert_eq!(format_datetime(1_704_067_200, -3_600), "2023-12-31 23:00");
        // Leap day.
        assert_eq!(format_datetime(1_709_208_000, 0), "2024-02-29 12:00");
        // Before the epoch.
        assert_eq!(format_datetime(-1, 0), "1969-12-31 23:59");
        // Garbage from a file system must not panic.
        let _ = format_datetime(i64::MAX, 3_600);
        let _ = format_datetime(i64::MIN, -3_600);
    }

    #[test]
    fn ago() {
        assert_eq!(format_ago(-5), None);
        assert_eq!(format_ago(0).as_deref(), Some("just now"));
        assert_eq!(format_ago(59).as_deref(), Some("just now"));
        assert_eq!(format_ago(60).as_deref(), Some("1 min ago"));
        assert_eq!(format_ago(3_599).as_deref(), Some("59 min ago"));
        assert_eq!(format_ago(7_200).as_deref(), Some("2 h ago"));
        assert_eq!(format_ago(90_000).as_deref(), Some("yesterday"));
        assert_eq!(format_ago(3 * 86_400).as_deref(), Some("3 days ago"));
        assert_eq!(format_ago(40 * 86_400), None);
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration_ms(0), "0 ms");
        assert_eq!(format_duration_ms(850), "850 ms");
        assert_eq!(format_duration_ms(3_210), "3.2 s");
        assert_eq!(format_duration_ms(125_000), "2 min 5 s");
        assert_eq!(format_duration_ms(3_840_000), "1 h 4 min");
    }

    #[test]
    fn ids() {
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"), "aaaqeaye…dypq");
    }

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
    fn dir_and_name() {
        assert_eq!(split_dir_name("music"), ("", "music"));
        assert_eq!(split_dir_name("music/jazz/a.flac"), ("music/jazz/", "a.flac"));
    }

    #[test]
    fn shown_escapes_what_a_terminal_would_act_on() {
        assert!(matches!(shown("Ærø 曲.flac"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(shown("a\nb\tc\rd\u{1b}[31me\u{7f}"), "a\\nb\\tc\\rd\\u{1b}[31me\\u{7f}");
        let wire = crate::path::encode_name(b"caf\xe9");
        assert_eq!(shown(&wire), "caf\\xe9");
    }
}
