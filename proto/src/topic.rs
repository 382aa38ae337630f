//! Topic keys and the connection-bound proof of topic membership.
//!
//! Goals: friends only agree on a topic *name*; everything else derives from
//! it. Nobody without the name learns it, or can tell which topic a
//! connection, announcement or mDNS record belongs to.
//!
//! Non-goals: hiding how many topics a node proves on a connection; resisting
//! a member who shares the name with an outsider (a topic name is a shared
//! password).
//!
//! Every key is `BLAKE3 derive_key(context, topic name bytes)`, with one
//! versioned context string per purpose, so the keys are independent: knowing
//! one (say the MQTT path, which the broker sees) reveals nothing of another.

use serde::{Deserialize, Serialize};

/// Longest topic name accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Most topics one node proves on a connection (and may be a member of).
pub const MAX_TOPICS: usize = 64;

const CTX_HANDSHAKE: &str = "harddrive-party 2026-11 topic handshake v1";
const CTX_ANNOUNCE: &str = "harddrive-party 2026-11 topic announce v1";
const CTX_MDNS: &str = "harddrive-party 2026-11 topic mdns v1";
const CTX_MQTT_PATH: &str = "harddrive-party 2026-11 topic mqtt path v1";
/// Domain separation for the membership proof's MAC input.
const PROOF_DOMAIN: &[u8] = b"hdp/1 topic proof";
/// TLS exporter label for the membership proof (RFC 8446 section 7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-hdp/1 topic proof";

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("a topic name cannot be empty")]
    Empty,
    #[error("a topic name is at most {MAX_TOPIC_LEN} bytes")]
    TooLong,
    #[error("a topic name cannot contain control characters")]
    ControlChar,
}

/// Checks a topic name; surrounding whitespace is not part of it.
pub fn validate_topic(name: &str) -> Result<&str, TopicError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(TopicError::ControlChar);
    }
    Ok(name)
}

/// The keys of one topic.
#[derive(Clone, PartialEq, Eq)]
pub struct TopicKeys {
    /// MAC key of the connection handshake.
    pub handshake: [u8; 32],
    /// Encryption key of announcements (MQTT).
    pub announce: [u8; 32],
    /// Key of the mDNS recognition tokens.
    pub mdns: [u8; 32],
    /// Public, non-reversible id of the topic: the MQTT topic path.
    pub mqtt_path: [u8; 32],
}

impl std::fmt::Debug for TopicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TopicKeys(..)")
    }
}

impl TopicKeys {
    /// Derives the keys of the topic `name` (already validated).
    pub fn derive(name: &str) -> Self {
        let k = |ctx| blake3::derive_key(ctx, name.as_bytes());
        TopicKeys {
            handshake: k(CTX_HANDSHAKE),
            announce: k(CTX_ANNOUNCE),
            mdns: k(CTX_MDNS),
            mqtt_path: k(CTX_MQTT_PATH),
        }
    }
}

/// Which end of the connection made a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Dialer = 1,
    Listener = 2,
}

/// The proof that the maker of `role` knows a topic, bound to one TLS
/// connection (`exporter`, from the TLS exporter with [`EXPORTER_LABEL`]) and
/// to both ends' identities, so it cannot be replayed on another connection
/// or reflected back.
///
/// `proof = BLAKE3-keyed(handshake key, "hdp/1 topic proof" ‖ role ‖ exporter ‖ dialer id ‖ listener id)`
pub fn topic_proof(
    handshake_key: &[u8; 32],
    role: Role,
    exporter: &[u8; 32],
    dialer: &[u8; 32],
    listener: &[u8; 32],
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(handshake_key);
    h.update(PROOF_DOMAIN);
    h.update(&[role as u8]);
    h.update(exporter);
    h.update(dialer);
    h.update(listener);
    *h.finalize().as_bytes()
}

/// Compares two proofs in constant time.
pub fn proofs_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lowercase hex, for test vectors and the MQTT path.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_topic("  friends  "), Ok("friends"));
        assert_eq!(validate_topic(" "), Err(TopicError::Empty));
        assert_eq!(validate_topic("a\nb"), Err(TopicError::ControlChar));
        assert_eq!(validate_topic(&"x".repeat(257)), Err(TopicError::TooLong));
    }

    #[test]
    fn keys_are_independent_and_stable() {
        let k = TopicKeys::derive("friends");
        let all = [k.handshake, k.announce, k.mdns, k.mqtt_path];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(TopicKeys::derive("friends").handshake, TopicKeys::derive("Friends").handshake);
        // Test vectors (docs/PROTOCOL.md).
        assert_eq!(hex(&k.handshake), VECTOR_HANDSHAKE);
        assert_eq!(hex(&k.mqtt_path), VECTOR_MQTT_PATH);
    }

    const VECTOR_HANDSHAKE: &str = "1f9f910f5d6d84453f8bef92ed931a645b0c886e049909c2d5e60fc304416acc";
    const VECTOR_MQTT_PATH: &str = "53c1a0d78efdd239f9144d5cd84c9716f6836ad52b4a33688f65d4f762ab67ae";

    #[test]
    fn proofs_bind_role_connection_and_identities() {
        let k = TopicKeys::derive("friends").handshake;
        let (e, d, l) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let p = topic_proof(&k, Role::Dialer, &e, &d, &l);
        assert_ne!(p, topic_proof(&k, Role::Listener, &e, &d, &l));
        assert_ne!(p, topic_proof(&k, Role::Dialer, &[9u8; 32], &d, &l));
        assert_ne!(p, topic_proof(&k, Role::Dialer, &e, &l, &d));
        assert_ne!(p, topic_proof(&TopicKeys::derive("other").handshake, Role::Dialer, &e, &d, &l));
        assert!(proofs_equal(&p, &topic_proof(&k, Role::Dialer, &e, &d, &l)));
        assert_eq!(hex(&p), VECTOR_PROOF);
    }

    const VECTOR_PROOF: &str = "4a702493daec57fc1999debe3847c7fede3a1193e832d17cf34e4a3277f4a3af";
}
