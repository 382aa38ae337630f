//! Text as an `hdp:` contact link (what a friend's QR code holds): parsed or
//! refused; a parsed link prints back to one that parses to the same contact.
#![no_main]

use hdp_proto::contact::Contact;
use hdp_proto::id::PeerId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Contact::is_contact(&text);
    let _ = text.parse::<PeerId>();
    if let Ok(c) = text.parse::<Contact>() {
        let again: Contact = c.to_string().parse().expect("a printed contact parses");
        assert_eq!(again, c);
    }
});
