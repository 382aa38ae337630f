//! Bytes as a file name or share path (docs/PROTOCOL.md §5): the escape of
//! names that are not UTF-8 is exact both ways, escapes never make `/`, NUL
//! or dots, and validation and display never fail.
#![no_main]

use hdp_proto::path::{SharePath, decode_name, decoded_len, encode_name, validate_component};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let wire = encode_name(data);
    assert_eq!(&*decode_name(&wire), data);
    assert_eq!(decoded_len(&wire), data.len());
    let _ = hdp_proto::fmt::shown(&wire);
    if validate_component(&wire).is_ok() {
        assert!(!data.contains(&b'/') && !data.contains(&0) && data != b"." && data != b"..");
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = SharePath::parse(&text) {
        assert_eq!(SharePath::parse(p.as_str()).as_ref(), Ok(&p));
        for c in p.components() {
            assert!(validate_component(c).is_ok());
            let raw = decode_name(c);
            assert!(!raw.contains(&b'/') && !raw.contains(&0) && &*raw != b"." && &*raw != b"..");
        }
    }
    let _ = hdp_proto::topic::validate_topic(&text);
    let _ = hdp_proto::fmt::breadcrumbs(&text);
});
