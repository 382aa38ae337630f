//! Small wrappers over browser facilities the components need: the clock,
//! the local time zone, `confirm()`, scrolling and the console.

use wasm_bindgen::JsValue;

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// The local time zone's offset from UTC at `unix` (east positive), in seconds.
fn utc_offset_secs(unix: i64) -> i64 {
    let date = js_sys::Date::new(&JsValue::from_f64(unix as f64 * 1000.0));
    let minutes = date.get_timezone_offset();
    if minutes.is_finite() {
        // getTimezoneOffset() counts minutes *behind* UTC.
        -(minutes as i64) * 60
    } else {
        0
    }
}

/// `2024-03-05 14:07` in the browser's time zone.
pub fn local_datetime(unix: i64) -> String {
    hdp_proto::fmt::format_datetime(unix, utc_offset_secs(unix))
}

/// `5 min ago` for recent times, the local date and time otherwise.
pub fn ago_or_date(unix: i64) -> String {
    hdp_proto::fmt::format_ago(now_secs() - unix).unwrap_or_else(|| local_datetime(unix))
}

/// Asks the user a yes/no question with the browser's own dialog.
pub fn confirm(message: &str) -> bool {
    web_sys::window().and_then(|w| w.confirm_with_message(message).ok()).unwrap_or(false)
}

/// Scrolls the page back to the top (after navigating to another folder).
pub fn scroll_to_top() {
    if let Some(w) = web_sys::window() {
        w.scroll_to_with_x_and_y(0.0, 0.0);
    }
}

/// Writes to the browser console's error log.
pub fn log_error(message: &str) {
    web_sys::console::error_1(&JsValue::from_str(message));
}

/// Puts `text` on the clipboard (best effort: needs a secure context or a
/// user gesture in some browsers).
pub fn copy_text(text: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
}

/// Scrolls the element with id `id` all the way to the right.
pub fn scroll_right(id: &str) {
    if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id)) {
        el.set_scroll_left(el.scroll_width());
    }
}
