//! Raw bytes as an MQTT announcement or signal of a topic we are on, and as
//! the TXT properties of an mDNS record (`key=value` lines).
#![no_main]

use std::sync::OnceLock;

use hdp_proto::discovery::{mdns_recognise, open_announcement, open_signal};
use hdp_proto::topic::TopicKeys;
use libfuzzer_sys::fuzz_target;

/// Derived once: the KDF is slow on purpose.
fn keys() -> &'static TopicKeys {
    static KEYS: OnceLock<TopicKeys> = OnceLock::new();
    KEYS.get_or_init(|| TopicKeys::derive("fuzz"))
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let _ = open_announcement(keys, data);
    let _ = open_signal(keys, data);
    let text = String::from_utf8_lossy(data);
    let props: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let _ = mdns_recognise(|k| props.iter().find(|(key, _)| *key == k).map(|(_, v)| *v), &[keys]);
});
