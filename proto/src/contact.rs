//! Contact URIs: what a friend needs to reach a node, small enough for a QR
//! code.
//!
//! ```text
//! hdp:<peer id>?addr=<host:port>&addr=<host:port>…
//! ```
//!
//! The peer id is the base32 ed25519 key ([`crate::id::PeerId`]); the
//! connecting side checks that the node it reaches proves exactly this key,
//! so a QR code cannot be redirected to somebody else. Addresses are socket
//! addresses (`192.0.2.7:4433`, `[2001:db8::7]:4433`) or `host:port`; at most
//! [`MAX_CONTACT_ADDRS`] are carried and tried in order. Topic names are
//! never in a contact URI: they are the shared secret of a group.

use std::fmt;
use std::str::FromStr;

use crate::id::PeerId;

/// The scheme, with its colon.
pub const SCHEME: &str = "hdp:";
/// Most addresses one contact URI carries (a QR code stays scannable).
pub const MAX_CONTACT_ADDRS: usize = 8;
/// Longest contact URI accepted.
pub const MAX_CONTACT_LEN: usize = 1024;

/// A parsed contact URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: PeerId,
    /// `host:port` strings, in the order to try them.
    pub addrs: Vec<String>,
}

/// Why a contact URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("not an hdp: contact link")]
    Scheme,
    #[error("the contact link is longer than {MAX_CONTACT_LEN} bytes")]
    TooLong,
    #[error("the contact link has no valid peer id")]
    Id,
    #[error("the contact link carries no address to dial")]
    NoAddress,
    #[error("the contact link has a malformed address {0:?} (want host:port)")]
    Address(String),
}

impl Contact {
    /// Whether `text` looks like a contact URI rather than a plain address.
    pub fn is_contact(text: &str) -> bool {
        text.trim().get(..SCHEME.len()).is_some_and(|p| p.eq_ignore_ascii_case(SCHEME))
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.id)?;
        for (i, a) in self.addrs.iter().take(MAX_CONTACT_ADDRS).enumerate() {
            write!(f, "{}addr={a}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// `host:port` with a non-empty host and a port number; brackets for IPv6.
fn valid_addr(a: &str) -> bool {
    let Some((host, port)) = a.rsplit_once(':') else { return false };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

impl FromStr for Contact {
    type Err = ContactError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.len() > MAX_CONTACT_LEN {
            return Err(ContactError::TooLong);
        }
        if !Contact::is_contact(text) {
            return Err(ContactError::Scheme);
        }
        let rest = &text[SCHEME.len()..];
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (id, query) = rest.split_once('?').unwrap_or((rest, ""));
        let id: PeerId = id.trim_end_matches('/').parse().map_err(|_| ContactError::Id)?;
        let mut addrs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let Some(addr) = pair.strip_prefix("addr=") else { continue };
            if !valid_addr(addr) {
                return Err(ContactError::Address(addr.chars().take(80).collect()));
            }
            if addrs.len() < MAX_CONTACT_ADDRS && !addrs.iter().any(|a| a == addr) {
                addrs.push(addr.to_owned());
            }
        }
        if addrs.is_empty() {
            return Err(ContactError::NoAddress);
        }
        Ok(Contact { id, addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> PeerId {
        PeerId([7; 32])
    }

    #[test]
    fn round_trip() {
        let c = Contact { id: id(), addrs: vec!["192.0.2.7:4433".into(), "[2001:db8::7]:4433".into()] };
        let text = c.to_string();
        assert!(text.starts_with("hdp:") && text.contains("?addr=192.0.2.7:4433&addr=[2001:db8::7]:4433"), "{text}");
        assert_eq!(text.parse::<Contact>().unwrap(), c);
        // A `//` after the scheme and an upper-case scheme are tolerated.
        let loose = text.replacen("hdp:", "HDP://", 1);
        assert_eq!(loose.parse::<Contact>().unwrap(), c);
    }

    #[test]
    fn refusals() {
        let good = format!("hdp:{}", id());
        assert_eq!("192.0.2.7:4433".parse::<Contact>(), Err(ContactError::Scheme));
        assert_eq!("hdp:nope?addr=a:1".parse::<Contact>(), Err(ContactError::Id));
        assert_eq!(good.parse::<Contact>(), Err(ContactError::NoAddress));
        for bad in ["a", "a:0", ":1", "a b:1", "[zz]:1", "a:99999"] {
            assert!(matches!(format!("{good}?addr={bad}").parse::<Contact>(), Err(ContactError::Address(_))), "{bad}");
        }
        assert_eq!(format!("{good}?addr={}", "a".repeat(2000)).parse::<Contact>(), Err(ContactError::TooLong));
        // Unknown keys are ignored; duplicates and extras beyond the cap are dropped.
        let many: String = (1..20).map(|p| format!("&addr=h:{p}&x=1")).collect();
        let c = format!("{good}?addr=h:1{many}").parse::<Contact>().unwrap();
        assert_eq!(c.addrs.len(), MAX_CONTACT_ADDRS);
        assert_eq!(c.addrs[0], "h:1");
    }
}
