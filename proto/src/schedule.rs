//! Bandwidth schedules: other upload and download limits at chosen hours of
//! chosen days, e.g. "08:00–23:00 on weekdays: 1M up, 4M down".
//!
//! Goals: rules a person can read in `config.toml` and on a phone; the same
//! checking and evaluation in the node and the web UI; no clock and no time
//! zone code here (the caller gives local time as weekday and minute).
//!
//! Non-goals: dates, holidays, seconds; limits per peer.
//!
//! A rule covers `from`–`to` local time on each of its days; `to` earlier
//! than `from` runs past midnight into the next day, and `to` equal to
//! `from` is the whole day. The first rule that covers the moment wins;
//! outside every rule the node's usual limits apply. In a rule, a missing
//! limit keeps the usual one and 0 means unlimited.

use serde::{Deserialize, Serialize};

/// Most rules in a schedule: a week holds no more distinct windows a
/// person would set by hand.
pub const MAX_RULES: usize = 32;
/// Weekday names as rules spell them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One rule as written in the API and saved settings.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRule {
    /// `"mon"` … `"sun"`; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Local time `HH:MM` the rule starts.
    pub from: String,
    /// Local time `HH:MM` it ends (exclusive).
    pub to: String,
    /// Bytes per second for all uploads; absent: the usual limit; 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upload_rate: Option<u64>,
    /// Bytes per second for all downloads; absent: the usual limit; 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_download_rate: Option<u64>,
}

/// A rule that was checked: days as a bit set (bit 0 Monday), minutes of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    days: u8,
    from: u16,
    to: u16,
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
}

/// A rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0:?} is not a day: use mon, tue, wed, thu, fri, sat, sun, weekdays, weekends or daily")]
    Day(String),
    #[error("{0:?} is not a time of day: use HH:MM, 00:00 to 23:59")]
    Time(String),
    #[error("a schedule holds at most {MAX_RULES} rules")]
    TooMany,
}

/// A moment in local time: what the rules are evaluated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    /// Minutes since local midnight, 0–1439.
    pub minute: u16,
}

impl LocalTime {
    /// The local time `unix` seconds after the epoch at `offset` seconds east of UTC.
    pub fn from_unix(unix: i64, offset: i32) -> Self {
        let local = unix.saturating_add(i64::from(offset));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (3, counting from Monday = 0).
        LocalTime { weekday: (days + 3).rem_euclid(7) as u8, minute: (secs / 60) as u16 }
    }
}

impl std::fmt::Display for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let day = DAYS[usize::from(self.weekday % 7)];
        write!(f, "{day} {:02}:{:02}", self.minute / 60, self.minute % 60)
    }
}

/// Day names to what rules store: `"weekdays"`, `"weekends"`, `"daily"` and
/// single days (any case) expand to lowercase three-letter names in week order.
pub fn expand_days<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, RuleError> {
    let mut bits = 0u8;
    for n in names {
        bits |= day_bits(n.as_ref())?;
    }
    Ok(names_of(bits))
}

fn day_bits(name: &str) -> Result<u8, RuleError> {
    let lower = name.trim().to_ascii_lowercase();
    Ok(match lower.as_str() {
        "weekdays" => 0b001_1111,
        "weekends" | "weekend" => 0b110_0000,
        "daily" | "every day" | "all" => 0b111_1111,
        // `mon`, `monday`, `tues`, …: a prefix of a day's name, at least 3 letters.
        _ => {
            const FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
            let i = FULL
                .iter()
                .position(|f| lower.len() >= 3 && f.starts_with(lower.as_str()))
                .ok_or_else(|| RuleError::Day(name.to_owned()))?;
            1 << i
        }
    })
}

fn names_of(bits: u8) -> Vec<String> {
    (0..7).filter(|i| bits & (1 << i) != 0).map(|i| DAYS[i].to_owned()).collect()
}

/// `"08:00"` → 480.
pub fn parse_time(s: &str) -> Result<u16, RuleError> {
    let bad = || RuleError::Time(s.to_owned());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Rule {
    /// Checks a rule as written.
    pub fn check(r: &RateRule) -> Result<Rule, RuleError> {
        let mut days = 0u8;
        for d in &r.days {
            days |= day_bits(d)?;
        }
        if r.days.is_empty() {
            days = 0b111_1111;
        }
        Ok(Rule {
            days,
            from: parse_time(&r.from)?,
            to: parse_time(&r.to)?,
            max_upload_rate: r.max_upload_rate,
            max_download_rate: r.max_download_rate,
        })
    }

    /// The rule as it is saved and shown: days spelled out, times as `HH:MM`.
    pub fn written(&self) -> RateRule {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        RateRule {
            days: names_of(self.days),
            from: hm(self.from),
            to: hm(self.to),
            max_upload_rate: self.max_upload_rate,
            max_download_rate: self.max_download_rate,
        }
    }

    /// Whether the rule is in force at `t`.
    pub fn covers(&self, t: LocalTime) -> bool {
        let on = |day: u8| self.days & (1 << (day % 7)) != 0;
        let yesterday = (t.weekday + 6) % 7;
        match self.from.cmp(&self.to) {
            std::cmp::Ordering::Less => on(t.weekday) && (self.from..self.to).contains(&t.minute),
            std::cmp::Ordering::Equal => on(t.weekday),
            // Past midnight: the evening belongs to the rule's day, the
            // early morning to the day after it.
            std::cmp::Ordering::Greater => {
                (on(t.weekday) && t.minute >= self.from) || (on(yesterday) && t.minute < self.to)
            }
        }
    }
}

/// Checks a whole schedule.
pub fn check_rules(rules: &[RateRule]) -> Result<Vec<Rule>, RuleError> {
    if rules.len() > MAX_RULES {
        return Err(RuleError::TooMany);
    }
    rules.iter().map(Rule::check).collect()
}

/// The limits in force at `t`: the first covering rule's (each limit it
/// leaves out is `usual`'s), with that rule's index; else `usual`.
/// Limits are bytes per second, `None` meaning unlimited.
pub fn limits_at(
    rules: &[Rule],
    usual: (Option<u64>, Option<u64>),
    t: LocalTime,
) -> (Option<u64>, Option<u64>, Option<usize>) {
    let unlimited_if_zero = |r: u64| Some(r).filter(|r| *r > 0);
    match rules.iter().position(|r| r.covers(t)) {
        Some(i) => {
            let r = &rules[i];
            (
                r.max_upload_rate.map_or(usual.0, unlimited_if_zero),
                r.max_download_rate.map_or(usual.1, unlimited_if_zero),
                Some(i),
            )
        }
        None => (usual.0, usual.1, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(days: &[&str], from: &str, to: &str, up: Option<u64>, down: Option<u64>) -> Rule {
        let days = days.iter().map(|d| (*d).to_owned()).collect();
        Rule::check(&RateRule { days, from: from.into(), to: to.into(), max_upload_rate: up, max_download_rate: down })
            .unwrap()
    }

    fn at(day: &str, hm: &str) -> LocalTime {
        LocalTime { weekday: DAYS.iter().position(|d| *d == day).unwrap() as u8, minute: parse_time(hm).unwrap() }
    }

    #[test]
    fn local_time_from_unix() {
        // 2026-12-07 08:00:00 UTC is a Monday.
        let t = 1_796_630_400;
        assert_eq!(LocalTime::from_unix(t, 0), at("mon", "08:00"));
        assert_eq!(LocalTime::from_unix(t, 3600), at("mon", "09:00"));
        assert_eq!(LocalTime::from_unix(t, -9 * 3600), at("sun", "23:00"));
        assert_eq!(LocalTime::from_unix(0, 0), at("thu", "00:00"));
        assert_eq!(LocalTime::from_unix(-60, 0), at("wed", "23:59"));
        assert_eq!(at("mon", "08:05").to_string(), "mon 08:05");
    }

    #[test]
    fn the_example_of_the_issue() {
        // "08:00–23:00 weekdays: 1M up, downloads 4M; otherwise unlimited".
        let rules = [rule(&["weekdays"], "08:00", "23:00", Some(1 << 20), Some(4 << 20))];
        let usual = (None, None);
        assert_eq!(limits_at(&rules, usual, at("mon", "07:59")), (None, None, None));
        assert_eq!(limits_at(&rules, usual, at("mon", "08:00")), (Some(1 << 20), Some(4 << 20), Some(0)));
        assert_eq!(limits_at(&rules, usual, at("fri", "22:59")), (Some(1 << 20), Some(4 << 20), Some(0)));
        assert_eq!(limits_at(&rules, usual, at("fri", "23:00")), (None, None, None));
        assert_eq!(limits_at(&rules, usual, at("sat", "12:00")), (None, None, None));
    }

    #[test]
    fn past_midnight_whole_days_order_and_usual_limits() {
        let night = rule(&["fri"], "23:00", "07:00", Some(0), None);
        assert!(night.covers(at("fri", "23:30")));
        assert!(night.covers(at("sat", "06:59")));
        assert!(!night.covers(at("sat", "07:00")));
        assert!(!night.covers(at("fri", "06:00")), "the morning belongs to the day after the rule's day");
        let sunday = rule(&["sun"], "00:00", "00:00", None, Some(1 << 20));
        assert!(sunday.covers(at("sun", "00:00")) && sunday.covers(at("sun", "23:59")));
        assert!(!sunday.covers(at("mon", "00:00")));
        // Sunday wraps to Monday.
        assert!(rule(&["sun"], "22:00", "02:00", None, None).covers(at("mon", "01:00")));
        // First match wins; a left-out limit keeps the usual one; 0 lifts it.
        let usual = (Some(2 << 20), Some(8 << 20));
        let rules = [night, sunday, rule(&[], "00:00", "00:00", Some(5), Some(5))];
        assert_eq!(limits_at(&rules, usual, at("sat", "01:00")), (None, Some(8 << 20), Some(0)));
        assert_eq!(limits_at(&rules, usual, at("sun", "12:00")), (Some(2 << 20), Some(1 << 20), Some(1)));
        assert_eq!(limits_at(&rules, usual, at("tue", "12:00")), (Some(5), Some(5), Some(2)));
    }

    #[test]
    fn rules_are_checked_and_written_back() {
        assert_eq!(expand_days(&["Weekends", "mon", "Tuesday"]).unwrap(), ["mon", "tue", "sat", "sun"]);
        assert!(matches!(expand_days(&["mo"]), Err(RuleError::Day(_))));
        assert!(matches!(expand_days(&["monkey"]), Err(RuleError::Day(_))));
        assert!(matches!(expand_days(&["a€"]), Err(RuleError::Day(_))));
        for bad in ["24:00", "8", "08:0", "08:60", "-1:00", "", "08:00:00", "+8:00", "٠٨:٠٠"] {
            assert!(matches!(parse_time(bad), Err(RuleError::Time(_))), "{bad:?}");
        }
        assert_eq!(parse_time("8:05"), Ok(485));
        let r = rule(&["weekdays"], "8:00", "23:00", Some(1), None);
        let w = r.written();
        assert_eq!((w.days.len(), w.from.as_str(), w.to.as_str()), (5, "08:00", "23:00"));
        assert_eq!(Rule::check(&w), Ok(r));
        let many = vec![RateRule { from: "00:00".into(), to: "00:00".into(), ..Default::default() }; MAX_RULES + 1];
        assert_eq!(check_rules(&many), Err(RuleError::TooMany));
    }
}
