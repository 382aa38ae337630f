//! The bandwidth schedule at run time: which upload and download limits
//! are in force, applied to the shared rate limits of uploads
//! ([`crate::serve::Server`]) and downloads ([`crate::download::Downloads`]).
//!
//! The rules and their evaluation are sans-IO in [`hdp_proto::schedule`];
//! this module adds the clock, the local time zone and a task. The task
//! applies the limits at start, at every minute boundary of the clock, and
//! at once when the usual limits or the rules change (`PUT /api/settings`).
//! Uploads and downloads already running pick a new limit up at their next
//! chunk. The clock is injected ([`Clock`]), so tests run a week of
//! schedule in paused time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdp_proto::api::LimitsNow;
use hdp_proto::schedule::{LocalTime, RateRule, Rule, RuleError, check_rules, limits_at};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Unix time in seconds, as the schedule sees it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;
/// Sets one of the node's shared rate limits (`None`: unlimited).
pub type SetRate = Box<dyn Fn(Option<u64>) + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    })
}

/// A schedule was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(
        "a limit of {0} bytes/s in the schedule is too low for peers to finish a read before they give up; \
         use at least 64K, or 0 for no limit"
    )]
    RateTooLow(u64),
}

/// Checks rules as the API or the saved settings give them: each must
/// parse, and every limit must be 0 (none) or at least
/// [`crate::serve::MIN_UPLOAD_RATE`]. Returns them spelled out.
pub fn check(rules: &[RateRule]) -> Result<Vec<RateRule>, ScheduleError> {
    let checked = check_rules(rules)?;
    for r in &checked {
        for rate in [r.max_upload_rate, r.max_download_rate].into_iter().flatten() {
            if rate > 0 && rate < crate::serve::MIN_UPLOAD_RATE {
                return Err(ScheduleError::RateTooLow(rate));
            }
        }
    }
    Ok(checked.iter().map(Rule::written).collect())
}

/// The local time zone, and where it came from.
#[derive(Debug)]
pub struct Zone {
    tz: tz::TimeZone,
    name: String,
}

impl Zone {
    /// UTC, for tests and machines without time zone data.
    pub fn utc() -> Self {
        Zone { tz: tz::TimeZone::utc(), name: "UTC".into() }
    }

    /// The zone named by the `timezone` setting (a zoneinfo name such as
    /// `Europe/Paris`, a TZif file or a POSIX TZ string), else the
    /// system's: `TZ`, `/etc/localtime`, OpenWrt's `/etc/TZ`; else UTC.
    /// Reads files: call it once at start.
    pub fn load(setting: Option<&str>) -> Self {
        if let Some(s) = setting {
            match named(s) {
                Ok(tz) => return Zone { tz, name: s.to_owned() },
                Err(e) => warn!(timezone = %s, error = %e, "unknown time zone; using the system's"),
            }
        }
        if let Some(t) = std::env::var("TZ").ok().filter(|t| !t.is_empty()) {
            match named(&t) {
                Ok(tz) => return Zone { tz, name: format!("TZ={t}") },
                Err(e) => warn!(tz = %t, error = %e, "the TZ variable names no time zone; trying /etc/localtime"),
            }
        }
        if std::path::Path::new("/etc/localtime").exists() {
            match tz::TimeZone::local() {
                Ok(tz) => {
                    let name = std::fs::read_link("/etc/localtime")
                        .ok()
                        .and_then(|p| {
                            let s = p.to_string_lossy().into_owned();
                            s.split_once("zoneinfo/").map(|(_, n)| n.to_owned())
                        })
                        .unwrap_or_else(|| "/etc/localtime".into());
                    return Zone { tz, name };
                }
                Err(e) => warn!(error = %e, "cannot read the system's time zone"),
            }
        }
        if let Ok(posix) = std::fs::read_to_string("/etc/TZ")
            && let Ok(tz) = tz::TimeZone::from_posix_tz(posix.trim())
        {
            return Zone { tz, name: format!("/etc/TZ ({})", posix.trim()) };
        }
        Zone::utc()
    }

    /// Seconds east of UTC at `unix`.
    pub fn offset(&self, unix: i64) -> i32 {
        self.tz.find_local_time_type(unix).map_or(0, |t| t.ut_offset())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A zone by name: `UTC`/`GMT` (even without time zone data installed), a
/// zoneinfo name or file, or a POSIX TZ string.
fn named(s: &str) -> Result<tz::TimeZone, tz::Error> {
    match s.trim().trim_start_matches(':') {
        "UTC" | "GMT" | "Etc/UTC" | "Etc/GMT" | "Z" => Ok(tz::TimeZone::utc()),
        _ => tz::TimeZone::from_posix_tz(s),
    }
}

/// The schedule of a running node; see the module docs.
pub struct RateSchedule {
    plan: Mutex<Plan>,
    zone: Zone,
    clock: Clock,
    set_up: SetRate,
    set_down: SetRate,
    /// Wakes the task when the plan changes.
    changed: Notify,
}

impl std::fmt::Debug for RateSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateSchedule").field("plan", &self.plan).field("zone", &self.zone.name).finish()
    }
}

#[derive(Debug)]
struct Plan {
    /// The usual upload and download limits (`max_upload_rate`, `max_download_rate`).
    usual: (Option<u64>, Option<u64>),
    rules: Vec<RateRule>,
    checked: Vec<Rule>,
    /// What was last applied: upload, download, rule.
    applied: Option<(Option<u64>, Option<u64>, Option<usize>)>,
}

impl RateSchedule {
    /// A schedule over `usual` limits with `rules` (already checked with
    /// [`check`]); the limits in force are applied at once.
    pub fn new(
        usual: (Option<u64>, Option<u64>),
        rules: Vec<RateRule>,
        zone: Zone,
        clock: Clock,
        set_up: SetRate,
        set_down: SetRate,
    ) -> Result<Arc<Self>, ScheduleError> {
        let rules = check(&rules)?;
        let checked = check_rules(&rules)?;
        let this = Arc::new(RateSchedule {
            plan: Mutex::new(Plan { usual, rules, checked, applied: None }),
            zone,
            clock,
            set_up,
            set_down,
            changed: Notify::new(),
        });
        this.apply();
        Ok(this)
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The usual limits: upload, download.
    pub fn usual(&self) -> (Option<u64>, Option<u64>) {
        self.plan().usual
    }

    pub fn rules(&self) -> Vec<RateRule> {
        self.plan().rules.clone()
    }

    /// Changes the usual upload limit; in force now unless a rule sets it.
    pub fn set_usual_upload(&self, rate: Option<u64>) {
        self.plan().usual.0 = rate;
        self.apply();
    }

    /// Changes the usual download limit; in force now unless a rule sets it.
    pub fn set_usual_download(&self, rate: Option<u64>) {
        self.plan().usual.1 = rate;
        self.apply();
    }

    /// Replaces the rules; the limits they set apply at once.
    pub fn set_rules(&self, rules: Vec<RateRule>) -> Result<(), ScheduleError> {
        let rules = check(&rules)?;
        let checked = check_rules(&rules)?;
        {
            let mut plan = self.plan();
            plan.rules = rules;
            plan.checked = checked;
        }
        self.apply();
        self.changed.notify_one();
        Ok(())
    }

    /// The local time now, by the clock and the zone.
    fn local_now(&self) -> LocalTime {
        let unix = (self.clock)();
        LocalTime::from_unix(unix, self.zone.offset(unix))
    }

    /// The limits in force now, and why.
    pub fn now(&self) -> LimitsNow {
        let at = self.local_now();
        let plan = self.plan();
        let (up, down, rule) = limits_at(&plan.checked, plan.usual, at);
        let unix = (self.clock)();
        let offset = self.zone.offset(unix);
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        LimitsNow {
            max_upload_rate: up,
            max_download_rate: down,
            rule: rule.map(|r| r as u32),
            local_time: at.to_string(),
            timezone: format!("{} (UTC{sign}{:02}:{:02})", self.zone.name(), abs / 3600, abs % 3600 / 60),
        }
    }

    /// Applies the limits in force now, if they differ from the last applied.
    /// The setters run under the plan's lock (they only store atomics), so
    /// two callers cannot apply in one order and record in the other.
    fn apply(&self) {
        let at = self.local_now();
        let mut plan = self.plan();
        let now = limits_at(&plan.checked, plan.usual, at);
        if plan.applied == Some(now) {
            return;
        }
        let before = plan.applied.replace(now);
        if before.is_none_or(|b| b.0 != now.0) {
            (self.set_up)(now.0);
        }
        if before.is_none_or(|b| b.1 != now.1) {
            (self.set_down)(now.1);
        }
        if before.is_some_and(|b| b.2 != now.2) {
            match now.2 {
                Some(i) => {
                    info!(rule = i, local_time = %at, up = ?now.0, down = ?now.1, "schedule: a rule's limits apply")
                }
                None => info!(local_time = %at, up = ?now.0, down = ?now.1, "schedule: the usual limits apply"),
            }
        }
    }

    /// Starts the task that applies the schedule at every minute boundary.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken, tasks: &TaskTracker) {
        let this = self.clone();
        tasks.spawn(async move {
            loop {
                this.apply();
                // Just past the next minute boundary of the clock.
                let secs = 60 - (this.clock)().rem_euclid(60) as u64;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(50)) => {}
                    _ = this.changed.notified() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// 2026-12-07 00:00:00 UTC, a Monday.
    const MONDAY: i64 = 1_796_601_600;

    #[test]
    fn rates_in_rules_are_checked() {
        let rule = |up| RateRule { from: "8:00".into(), to: "9:00".into(), max_upload_rate: up, ..Default::default() };
        assert!(matches!(check(&[rule(Some(1000))]), Err(ScheduleError::RateTooLow(1000))));
        assert_eq!(check(&[rule(Some(0))]).unwrap()[0].from, "08:00");
        assert!(matches!(check(&[RateRule { from: "x".into(), ..Default::default() }]), Err(ScheduleError::Rule(_))));
    }

    /// "08:00–23:00 weekdays: 1M up, downloads 4M; otherwise unlimited",
    /// run through a week in paused time with the clock following it.
    #[tokio::test(start_paused = true)]
    async fn a_schedule_switches_limits_as_the_clock_moves() {
        let start = tokio::time::Instant::now();
        let clock: Clock = Arc::new(move || MONDAY + 7 * 3600 + start.elapsed().as_secs() as i64);
        let (up, down) = (Arc::new(AtomicI64::new(-1)), Arc::new(AtomicI64::new(-1)));
        let record = |cell: &Arc<AtomicI64>| -> SetRate {
            let cell = cell.clone();
            Box::new(move |r: Option<u64>| cell.store(r.map_or(0, |r| r as i64), Ordering::SeqCst))
        };
        let rules = vec![RateRule {
            days: vec!["weekdays".into()],
            from: "08:00".into(),
            to: "23:00".into(),
            max_upload_rate: Some(1 << 20),
            max_download_rate: Some(4 << 20),
        }];
        let s = RateSchedule::new((None, None), rules, Zone::utc(), clock, record(&up), record(&down)).unwrap();
        let now = || (up.load(Ordering::SeqCst), down.load(Ordering::SeqCst));
        assert_eq!(now(), (0, 0), "Monday 07:00: unlimited");
        assert_eq!(s.now().local_time, "mon 07:00");
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        s.start(stop.clone(), &tasks);
        tokio::time::sleep(Duration::from_secs(3600 + 30)).await;
        assert_eq!(now(), (1 << 20, 4 << 20), "Monday 08:00:30: the rule");
        assert_eq!(s.now().rule, Some(0));
        tokio::time::sleep(Duration::from_secs(15 * 3600)).await;
        assert_eq!(now(), (0, 0), "Monday 23:00:30: unlimited again");
        // Saturday 10:00: the weekend is unlimited.
        tokio::time::sleep(Duration::from_secs(4 * 86400 + 11 * 3600)).await;
        assert_eq!(s.now().local_time, "sat 10:00");
        assert_eq!(now(), (0, 0));
        // A new rule and new usual limits apply at once, without waiting for a minute.
        s.set_usual_upload(Some(2 << 20));
        assert_eq!(now(), (2 << 20, 0));
        let weekend = RateRule {
            days: vec!["sat".into()],
            from: "09:00".into(),
            to: "12:00".into(),
            max_download_rate: Some(1 << 20),
            ..Default::default()
        };
        s.set_rules(vec![weekend]).unwrap();
        assert_eq!(now(), (2 << 20, 1 << 20), "a left-out upload limit keeps the usual one");
        tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
        assert_eq!(now(), (2 << 20, 0));
        stop.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[test]
    fn zones_from_posix_strings_and_offsets() {
        let paris = Zone::load(Some("CET-1CEST,M3.5.0,M10.5.0/3"));
        assert_eq!(paris.offset(MONDAY), 3600, "winter");
        assert_eq!(paris.offset(MONDAY - 150 * 86400), 7200, "summer");
        let s = RateSchedule::new(
            (None, None),
            vec![],
            paris,
            Arc::new(|| MONDAY + 23 * 3600 + 30 * 60),
            Box::new(|_| {}),
            Box::new(|_| {}),
        )
        .unwrap();
        assert_eq!(Zone::load(Some("UTC")).offset(MONDAY), 0, "UTC without time zone data");
        let now = s.now();
        assert_eq!(now.local_time, "tue 00:30");
        assert!(now.timezone.ends_with("(UTC+01:00)"), "{}", now.timezone);
    }
}
