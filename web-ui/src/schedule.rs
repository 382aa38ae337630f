//! The Settings page's bandwidth schedule: which limits are in force now
//! and why, the rules (other limits at chosen hours of chosen days), adding
//! and removing one. Each change saves the whole schedule with
//! `PUT /api/settings` and applies at once.

use hdp_proto::api::{Settings, SettingsUpdate};
use hdp_proto::fmt::format_size;
use hdp_proto::schedule::{DAYS, RateRule};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::session::Session;
use crate::settings::parse_rate;

/// `Weekdays`, `Sat, Sun`, `Every day`.
fn days_text(days: &[String]) -> String {
    let has = |d: &str| days.iter().any(|x| x == d);
    if days.is_empty() || DAYS.iter().all(|d| has(d)) {
        return "Every day".into();
    }
    if days.len() == 5 && DAYS[..5].iter().all(|d| has(d)) {
        return "Weekdays".into();
    }
    if days.len() == 2 && has("sat") && has("sun") {
        return "Weekends".into();
    }
    days.iter()
        .map(|d| {
            let mut c = d.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A rule's limit: the usual one, none, or a rate.
fn limit_text(rate: Option<u64>) -> String {
    match rate {
        None => "usual".into(),
        Some(0) => "unlimited".into(),
        Some(r) => format!("{}/s", format_size(r)),
    }
}

/// What a limit in force reads as.
fn now_text(rate: Option<u64>) -> String {
    rate.map_or_else(|| "unlimited".into(), |r| format!("{}/s", format_size(r)))
}

/// An empty field keeps the usual limit; `off` lifts it.
fn rule_rate(text: &str) -> Result<Option<u64>, String> {
    if text.trim().is_empty() { Ok(None) } else { parse_rate(text).map(Some) }
}

/// The schedule card; `current` is the Settings page's copy of the settings.
#[component]
pub fn ScheduleCard(current: RwSignal<Option<Settings>>) -> impl IntoView {
    let session = expect_context::<Session>();
    let days = RwSignal::new(vec![true, true, true, true, true, false, false]);
    let from = RwSignal::new("08:00".to_string());
    let to = RwSignal::new("23:00".to_string());
    let up = RwSignal::new(String::new());
    let down = RwSignal::new(String::new());
    let message = RwSignal::new(None::<Result<String, String>>);
    let saving = RwSignal::new(false);

    let save = move |rules: Vec<RateRule>, done: &'static str| {
        saving.set(true);
        spawn_local(async move {
            let update = SettingsUpdate { schedule: Some(rules), ..SettingsUpdate::default() };
            let result = session
                .call(|t| {
                    let update = update.clone();
                    async move { api::save_settings(&t, &update).await }
                })
                .await;
            saving.try_set(false);
            match result {
                Ok(s) => {
                    current.try_set(Some(s));
                    message.try_set(Some(Ok(done.to_owned())));
                }
                Err(e) => {
                    message.try_set(Some(Err(e.to_string())));
                }
            }
        });
    };

    let add = move |ev: SubmitEvent| {
        ev.prevent_default();
        let chosen: Vec<String> =
            days.get_untracked().iter().zip(DAYS).filter(|(on, _)| **on).map(|(_, d)| d.to_owned()).collect();
        if chosen.is_empty() {
            message.set(Some(Err("Choose at least one day.".into())));
            return;
        }
        let rule = (|| {
            Ok::<_, String>(RateRule {
                days: chosen,
                from: from.get_untracked(),
                to: to.get_untracked(),
                max_upload_rate: rule_rate(&up.get_untracked())?,
                max_download_rate: rule_rate(&down.get_untracked())?,
            })
        })();
        match rule {
            Ok(rule) => {
                let mut rules = current.with_untracked(|c| c.as_ref().map(|c| c.schedule.clone()).unwrap_or_default());
                rules.push(rule);
                save(rules, "Rule added; it applies at once.");
            }
            Err(e) => message.set(Some(Err(e))),
        }
    };

    let rules = move || current.with(|c| c.as_ref().map(|c| c.schedule.clone()).unwrap_or_default());

    view! {
        <section class="card stack" id="schedule">
            <h2 class="card-title">"Bandwidth schedule"</h2>
            <p class="muted">
                "Other limits at chosen hours, e.g. less upload while the family streams in the evening. The first rule that covers the moment wins; otherwise the usual limits above apply."
            </p>
            <p class="schedule-now" id="schedule-now">
                {move || {
                    current
                        .with(|c| {
                            c.as_ref()
                                .map(|c| {
                                    let n = &c.limits_now;
                                    let why = match n.rule {
                                        Some(i) => format!("rule {}", i + 1),
                                        None => "the usual limits".to_owned(),
                                    };
                                    format!(
                                        "Now ({}, {}): up {}, down {}, by {why}.",
                                        n.local_time,
                                        n.timezone,
                                        now_text(n.max_upload_rate),
                                        now_text(n.max_download_rate),
                                    )
                                })
                        })
                }}
            </p>
            <ol class="schedule-rules" id="schedule-rules">
                {move || {
                    let list = rules();
                    list.iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let text = format!(
                                "{} {}–{}: up {}, down {}",
                                days_text(&r.days),
                                r.from,
                                r.to,
                                limit_text(r.max_upload_rate),
                                limit_text(r.max_download_rate),
                            );
                            let remove = move |_| {
                                let mut rules = rules();
                                if i < rules.len() {
                                    rules.remove(i);
                                }
                                save(rules, "Rule removed.");
                            };
                            view! {
                                <li class="schedule-rule">
                                    <span>{text}</span>
                                    <button
                                        type="button"
                                        class="btn btn-small schedule-remove"
                                        disabled=move || saving.get()
                                        on:click=remove
                                    >
                                        "Remove"
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
            <form class="stack schedule-add" id="schedule-add" on:submit=add>
                <fieldset class="schedule-days">
                    <legend>"Days"</legend>
                    {DAYS
                        .iter()
                        .enumerate()
                        .map(|(i, d)| {
                            view! {
                                <label class="check">
                                    <input
                                        type="checkbox"
                                        name="schedule-day"
                                        value=*d
                                        prop:checked=move || days.with(|v| v[i])
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            days.update(|v| v[i] = on);
                                        }
                                    />
                                    {d.to_string()}
                                </label>
                            }
                        })
                        .collect_view()}
                </fieldset>
                <div class="input-row">
                    <label class="field">
                        "From" <input type="time" id="schedule-from" bind:value=from />
                    </label>
                    <label class="field">
                        "To" <input type="time" id="schedule-to" bind:value=to />
                    </label>
                </div>
                <div class="input-row">
                    <label class="field">
                        "Upload" <input type="text" id="schedule-up" placeholder="usual" autocomplete="off" bind:value=up />
                    </label>
                    <label class="field">
                        "Download"
                        <input type="text" id="schedule-down" placeholder="usual" autocomplete="off" bind:value=down />
                    </label>
                </div>
                <p class="hint">
                    "Limits like 500K or 4M; off for none; empty keeps the usual limit. A rule ending before it starts runs past midnight; the same time for both means the whole day."
                </p>
                <button type="submit" class="btn btn-block" id="schedule-add-btn" disabled=move || saving.get()>
                    "Add rule"
                </button>
            </form>
            {move || {
                message
                    .get()
                    .map(|m| match m {
                        Ok(t) => view! { <p class="field-ok" role="status" id="schedule-message">{t}</p> }.into_any(),
                        Err(e) => view! { <p class="field-error" role="alert" id="schedule-message">{e}</p> }.into_any(),
                    })
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_like_a_person_wrote_them() {
        let v = |d: &[&str]| d.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(days_text(&v(&["mon", "tue", "wed", "thu", "fri"])), "Weekdays");
        assert_eq!(days_text(&v(&["sat", "sun"])), "Weekends");
        assert_eq!(days_text(&[]), "Every day");
        assert_eq!(days_text(&v(&["mon", "sat"])), "Mon, Sat");
        assert_eq!(limit_text(None), "usual");
        assert_eq!(limit_text(Some(0)), "unlimited");
        assert_eq!(rule_rate(""), Ok(None));
        assert_eq!(rule_rate("off"), Ok(Some(0)));
        assert_eq!(rule_rate("4M"), Ok(Some(4 << 20)));
    }
}
