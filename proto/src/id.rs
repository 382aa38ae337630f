//! Peer identities.
//!
//! A peer is its ed25519 public key: all 32 bytes, never a hash or a name.
//! As text it is written in lowercase RFC 4648 base32 without padding
//! (52 characters), which is case-insensitive on input, survives being read
//! aloud and needs no escaping in URLs or MQTT topics.
//!
//! The friendly name (`brave-otter`) is derived from the key for display
//! only. Many keys share a name; it never authenticates anyone.

use std::fmt;
use std::str::FromStr;

/// Length of a peer id in bytes (an ed25519 public key).
pub const PEER_ID_LEN: usize = 32;
/// Length of a peer id in its text form.
pub const PEER_ID_TEXT_LEN: usize = 52;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why a peer id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdError {
    #[error("a peer id is {PEER_ID_TEXT_LEN} base32 characters, this one has {0}")]
    Length(usize),
    #[error("a peer id contains only a-z and 2-7, found {0:?}")]
    Character(char),
    #[error("the peer id's last character has non-zero padding bits")]
    Padding,
}

/// An ed25519 public key naming a peer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub [u8; PEER_ID_LEN]);

impl PeerId {
    pub fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// The display-only friendly name, `adjective-animal`.
    pub fn friendly_name(&self) -> String {
        friendly_name(&self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32_encode(&self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != PEER_ID_TEXT_LEN {
            return Err(PeerIdError::Length(s.chars().count()));
        }
        let mut out = [0u8; PEER_ID_LEN];
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        let mut i = 0;
        for ch in s.chars() {
            let v = match ch.to_ascii_lowercase() {
                c @ 'a'..='z' => c as u8 - b'a',
                c @ '2'..='7' => c as u8 - b'2' + 26,
                other => return Err(PeerIdError::Character(other)),
            };
            acc = (acc << 5) | u64::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if i < PEER_ID_LEN {
                    out[i] = (acc >> bits) as u8;
                }
                i += 1;
                acc &= (1 << bits) - 1;
            }
        }
        // 52 * 5 = 260 bits = 32 bytes + 4 padding bits, which must be zero.
        if acc != 0 {
            return Err(PeerIdError::Padding);
        }
        Ok(PeerId(out))
    }
}

impl serde::Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lowercase RFC 4648 base32 without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

const ADJECTIVES: [&str; 64] = [
    "amber", "brave", "bright", "calm", "clever", "cosy", "crisp", "curious", "daring", "dapper", "eager", "early",
    "fancy", "fearless", "fluffy", "frosty", "gentle", "giddy", "golden", "grand", "happy", "hardy", "humble", "icy",
    "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry", "mighty", "misty", "modest", "nimble", "noble",
    "patient", "plucky", "polite", "proud", "quick", "quiet", "rapid", "rosy", "rustic", "shiny", "silent", "silver",
    "sleepy", "smooth", "snowy", "sunny", "swift", "tidy", "tiny", "vivid", "warm", "wild", "windy", "wise", "witty",
    "young", "zany", "zesty",
];

const ANIMALS: [&str; 64] = [
    "albatross",
    "badger",
    "beaver",
    "bison",
    "bobcat",
    "camel",
    "capybara",
    "cheetah",
    "cougar",
    "coyote",
    "crane",
    "dingo",
    "dolphin",
    "donkey",
    "eagle",
    "falcon",
    "ferret",
    "finch",
    "fox",
    "gazelle",
    "gecko",
    "gibbon",
    "heron",
    "hedgehog",
    "ibis",
    "iguana",
    "jackal",
    "jaguar",
    "kestrel",
    "koala",
    "lemur",
    "leopard",
    "llama",
    "lynx",
    "magpie",
    "marmot",
    "meerkat",
    "mole",
    "moose",
    "newt",
    "ocelot",
    "octopus",
    "orca",
    "otter",
    "owl",
    "panda",
    "pelican",
    "penguin",
    "puffin",
    "quail",
    "rabbit",
    "raven",
    "salmon",
    "seal",
    "sparrow",
    "stoat",
    "tapir",
    "toucan",
    "turtle",
    "walrus",
    "weasel",
    "wombat",
    "yak",
    "zebra",
];

/// The display name for a public key: two words picked by its first bytes
/// (ed25519 public keys are uniformly distributed, so no hashing is needed).
pub fn friendly_name(key: &[u8; PEER_ID_LEN]) -> String {
    format!("{}-{}", ADJECTIVES[usize::from(key[0]) % ADJECTIVES.len()], ANIMALS[usize::from(key[1]) % ANIMALS.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_rfc4648_vectors() {
        // RFC 4648 section 10, lowercased, padding removed.
        for (input, want) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_encode(input.as_bytes()), want);
        }
    }

    #[test]
    fn peer_id_round_trip_and_vector() {
        let id = PeerId([0u8; 32]);
        assert_eq!(id.to_string(), "a".repeat(52));
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let id = PeerId(bytes);
        let text = id.to_string();
        assert_eq!(text, "aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq");
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<PeerId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PeerId>(&json).unwrap(), id);
    }

    #[test]
    fn peer_id_rejects_garbage() {
        assert_eq!("abc".parse::<PeerId>(), Err(PeerIdError::Length(3)));
        let bad = format!("{}1", "a".repeat(51));
        assert_eq!(bad.parse::<PeerId>(), Err(PeerIdError::Character('1')));
        let padded = format!("{}b", "a".repeat(51));
        assert_eq!(padded.parse::<PeerId>(), Err(PeerIdError::Padding));
        // Multi-byte input of the right byte length must not panic.
        let uni = "é".repeat(26);
        assert!(uni.parse::<PeerId>().is_err());
    }

    #[test]
    fn friendly_names_are_stable() {
        assert_eq!(friendly_name(&[0u8; 32]), "amber-albatross");
        let mut k = [0u8; 32];
        k[0] = 65;
        k[1] = 63;
        assert_eq!(friendly_name(&k), "brave-zebra");
    }
}
