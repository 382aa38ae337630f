//! What a browser sends the HTTP API besides paths: `Range` headers, the
//! query string of every route that takes one, and the JSON body of every
//! route that takes one.
#![no_main]

use hdp_proto::api::{AddShare, ConnectRequest, DownloadRequest, FriendUpdate, JoinTopic, SettingsUpdate, ShareUpdate};
use hdp_proto::range::{RangeRequest, Resolved, parse_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let size = data.iter().take(8).fold(0u64, |n, &b| (n << 8) | u64::from(b));
    let range = parse_range(Some(&text));
    match range.resolve(size) {
        Resolved::Partial { start, end } => assert!(start <= end && end < size),
        Resolved::Whole => assert!(range == RangeRequest::Whole || size == 0),
        Resolved::Unsatisfiable => {}
    }
    hdp_node::http::check_query_strings(data);
    let _ = serde_json::from_slice::<AddShare>(data);
    let _ = serde_json::from_slice::<ConnectRequest>(data);
    let _ = serde_json::from_slice::<DownloadRequest>(data);
    let _ = serde_json::from_slice::<JoinTopic>(data);
    let _ = serde_json::from_slice::<SettingsUpdate>(data);
    let _ = serde_json::from_slice::<ShareUpdate>(data);
    let _ = serde_json::from_slice::<FriendUpdate>(data);
});
