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
//! Topic names are chosen by people, so they are guessable: a broker operator
//! who sees an MQTT path derived from the name could try a dictionary of
//! names against it. So the name first goes through a memory-hard KDF
//! (Argon2id, [`TOPIC_KDF_MEMORY_KIB`] of memory, [`TOPIC_KDF_PASSES`]
//! passes, a fixed versioned salt) into the topic secret, making every guess
//! cost tens of milliseconds and megabytes. Every key is then
//! `BLAKE3 derive_key(context, topic secret)`, one versioned context string
//! per purpose, so the keys are independent: knowing one (say the MQTT path,
//! which the broker sees) reveals nothing of another.

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
    /// Derives the keys of the topic `name` (already validated). Slow on
    /// purpose (see the module docs): derive once per topic and keep them.
    pub fn derive(name: &str) -> Self {
        let secret = topic_secret(name);
        let k = |ctx| blake3::derive_key(ctx, &secret);
        TopicKeys {
            handshake: k(CTX_HANDSHAKE),
            announce: k(CTX_ANNOUNCE),
            mdns: k(CTX_MDNS),
            mqtt_path: k(CTX_MQTT_PATH),
        }
    }
}

/// Memory of the topic KDF, KiB. Enough to make guessing expensive, little
/// enough for a Pi that derives a key when it joins a topic.
pub const TOPIC_KDF_MEMORY_KIB: u32 = 8 * 1024;
/// Passes of the topic KDF.
pub const TOPIC_KDF_PASSES: u32 = 4;
/// Fixed salt of the topic KDF: every node must derive the same secret.
pub const TOPIC_KDF_SALT: &[u8] = b"harddrive-party 2026-11 topic v1";

/// `Argon2id(name, salt, m = 8 MiB, t = 4, p = 1)`, 32 bytes.
pub fn topic_secret(name: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    // The parameters are constants within Argon2's limits and the salt is
    // long enough, so neither call can fail; fall back to BLAKE3 rather than
    // panic if a future argon2 version disagreed.
    let params = argon2::Params::new(TOPIC_KDF_MEMORY_KIB, TOPIC_KDF_PASSES, 1, Some(32));
    let ok = params
        .ok()
        .map(|p| argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p))
        .is_some_and(|a| a.hash_password_into(name.as_bytes(), TOPIC_KDF_SALT, &mut out).is_ok());
    if !ok {
        out = blake3::derive_key("harddrive-party 2026-11 topic fallback v1", name.as_bytes());
    }
    out
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

/// Compares two byte strings in constant time (for equal lengths).
pub fn proofs_equal_slice(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        // Test vectors (docs/PROTOCOL.md), cross-checked with Python's
        // argon2-cffi and blake3 packages.
        assert_eq!(hex(&topic_secret("friends")), VECTOR_SECRET);
        assert_eq!(hex(&k.handshake), VECTOR_HANDSHAKE);
        assert_eq!(hex(&k.mqtt_path), VECTOR_MQTT_PATH);
    }

    const VECTOR_HANDSHAKE: &str = "0650a70e1a05cc91e621bc0b9a8a007f480ff2b9da63c9e6fe822b201f034aa6";
    const VECTOR_MQTT_PATH: &str = "ea69bbcd12a6c48366cc1e6a8ed292505e010e873a0cc505c26b0aea8531ea1d";
    const VECTOR_SECRET: &str = "828f6d222ac3ae937c4e1c5d92e5d1243fa6aacc3cf27f95e62bebbdba1af821";

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

    const VECTOR_PROOF: &str = "970f1e3845ba70881945b2dea252614349e1a6cab9bf8a31fe8056cd1569019e";
}
