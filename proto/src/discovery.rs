//! Discovery records: MQTT announcements and mDNS recognition tokens.
//!
//! Goals:
//! - Only members of a topic can read what a node publishes for it: its peer
//!   id, its addresses and the time. An announcement is encrypted with the
//!   topic's announce key (XChaCha20-Poly1305, random 24-byte nonce) and
//!   signed by the node's ed25519 identity, so a member cannot announce
//!   addresses in another node's name.
//! - An announcement is bound to its topic (the MQTT path is in the signed
//!   bytes and in the AEAD's associated data) and to its time: receivers
//!   refuse stale ones ([`check_fresh`]) and replays (a peer's timestamps
//!   must grow; the node keeps the last one per peer).
//! - mDNS TXT records let members recognise the node and learn its peer id;
//!   everyone else sees random-looking hex that changes with every nonce.
//! - Everything a peer sends is size-capped before it is decoded, and every
//!   decode returns an error instead of panicking.
//!
//! Non-goals: hiding that a host runs harddrive-party (the mDNS service type
//! and the MQTT traffic say so); hiding how many topics a node advertises
//! over mDNS; protecting against a topic member who leaks the topic name.
//!
//! Randomness comes from the caller (nonces are parameters), which keeps this
//! module sans-IO and its outputs reproducible for test vectors.

use std::net::{IpAddr, SocketAddr};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::PeerId;
use crate::topic::TopicKeys;

/// Version byte that starts every announcement.
pub const ANNOUNCE_VERSION: u8 = 1;
/// Largest announcement accepted (whole MQTT payload), bytes.
pub const MAX_ANNOUNCE_LEN: usize = 1024;
/// Most addresses one announcement may carry.
pub const MAX_ANNOUNCED_ADDRS: usize = 16;
/// The plaintext is zero-padded to a multiple of this, so the payload size
/// does not tell how many addresses a node has.
pub const ANNOUNCE_PAD: usize = 128;
/// Oldest announcement accepted, milliseconds.
pub const MAX_ANNOUNCE_AGE_MS: u64 = 5 * 60 * 1000;
/// How far in the future an announcement's clock may be, milliseconds.
pub const MAX_CLOCK_SKEW_MS: u64 = 60 * 1000;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const SIG_LEN: usize = 64;
const SIG_DOMAIN: &[u8] = b"hdp/1 announce signature";
const AAD_DOMAIN: &[u8] = b"hdp/1 announce";

/// What kind of address an announcement carries. Unknown kinds are skipped,
/// so later versions can add kinds (a relay, a punched port) without
/// breaking older receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrKind {
    /// An address of one of the node's own interfaces.
    Local = 0,
    /// The node's address as seen from outside its NAT (learnt later, by STUN).
    Public = 1,
}

impl AddrKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(AddrKind::Local),
            1 => Some(AddrKind::Public),
            _ => None,
        }
    }
}

/// One address as it travels: `kind` is an [`AddrKind`] value, kept as a
/// byte so unknown kinds decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAddr {
    pub kind: u8,
    pub ip: IpAddr,
    pub port: u16,
}

impl WireAddr {
    pub fn new(kind: AddrKind, addr: SocketAddr) -> Self {
        WireAddr { kind: kind as u8, ip: addr.ip(), port: addr.port() }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// What a node announces on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub peer: PeerId,
    /// Unix time in milliseconds, by the announcer's clock.
    pub timestamp_ms: u64,
    pub addrs: Vec<WireAddr>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    peer: [u8; 32],
    timestamp_ms: u64,
    addrs: Vec<WireAddr>,
}

/// Why an announcement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("announcement of {0} bytes exceeds the {MAX_ANNOUNCE_LEN}-byte limit")]
    TooLong(usize),
    #[error("announcement too short")]
    TooShort,
    #[error("announcement version {0} is not supported")]
    Version(u8),
    #[error("announcement does not decrypt with this topic's key")]
    Decrypt,
    #[error("announcement body is malformed")]
    Malformed,
    #[error("announcement carries more than {MAX_ANNOUNCED_ADDRS} addresses")]
    TooManyAddrs,
    #[error("announcement signature is invalid")]
    Signature,
}

fn signed_bytes(mqtt_path: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIG_DOMAIN.len() + 32 + body.len());
    m.extend_from_slice(SIG_DOMAIN);
    m.extend_from_slice(mqtt_path);
    m.extend_from_slice(body);
    m
}

fn aad(mqtt_path: &[u8; 32]) -> Vec<u8> {
    [AAD_DOMAIN, mqtt_path.as_slice()].concat()
}

/// Encrypts and signs an announcement for one topic.
///
/// `payload = 0x01 ‖ nonce(24) ‖ XChaCha20-Poly1305(announce key, nonce,
/// aad = "hdp/1 announce" ‖ mqtt path, plaintext)`, where
/// `plaintext = ed25519 signature(64) ‖ postcard(body) ‖ zeros` padded to a
/// multiple of [`ANNOUNCE_PAD`], and the signature covers
/// `"hdp/1 announce signature" ‖ mqtt path ‖ postcard(body)`.
pub fn seal_announcement(
    keys: &TopicKeys,
    identity: &SigningKey,
    timestamp_ms: u64,
    addrs: &[WireAddr],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, AnnounceError> {
    let addrs = &addrs[..addrs.len().min(MAX_ANNOUNCED_ADDRS)];
    let body = Body { peer: identity.verifying_key().to_bytes(), timestamp_ms, addrs: addrs.to_vec() };
    let body = postcard::to_allocvec(&body).map_err(|_| AnnounceError::Malformed)?;
    let sig = identity.sign(&signed_bytes(&keys.mqtt_path, &body));
    let mut plain = Vec::with_capacity(SIG_LEN + body.len() + ANNOUNCE_PAD);
    plain.extend_from_slice(&sig.to_bytes());
    plain.extend_from_slice(&body);
    plain.resize(plain.len().div_ceil(ANNOUNCE_PAD) * ANNOUNCE_PAD, 0);
    let cipher = XChaCha20Poly1305::new((&keys.announce).into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad(&keys.mqtt_path) })
        .map_err(|_| AnnounceError::Malformed)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(ANNOUNCE_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    if out.len() > MAX_ANNOUNCE_LEN {
        return Err(AnnounceError::TooLong(out.len()));
    }
    Ok(out)
}

/// Decrypts an announcement received on `keys`' topic and checks its
/// signature. Freshness and replays are the caller's to check
/// ([`check_fresh`] and the last timestamp it holds for the peer).
pub fn open_announcement(keys: &TopicKeys, payload: &[u8]) -> Result<Announcement, AnnounceError> {
    if payload.len() > MAX_ANNOUNCE_LEN {
        return Err(AnnounceError::TooLong(payload.len()));
    }
    let (&version, rest) = payload.split_first().ok_or(AnnounceError::TooShort)?;
    if version != ANNOUNCE_VERSION {
        return Err(AnnounceError::Version(version));
    }
    if rest.len() < NONCE_LEN + TAG_LEN + SIG_LEN {
        return Err(AnnounceError::TooShort);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new((&keys.announce).into());
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad(&keys.mqtt_path) })
        .map_err(|_| AnnounceError::Decrypt)?;
    let (sig, rest) = plain.split_at_checked(SIG_LEN).ok_or(AnnounceError::TooShort)?;
    let (body, padding) = postcard::take_from_bytes::<Body>(rest).map_err(|_| AnnounceError::Malformed)?;
    if padding.iter().any(|&b| b != 0) {
        return Err(AnnounceError::Malformed);
    }
    if body.addrs.len() > MAX_ANNOUNCED_ADDRS {
        return Err(AnnounceError::TooManyAddrs);
    }
    let body_bytes = &rest[..rest.len() - padding.len()];
    let key = VerifyingKey::from_bytes(&body.peer).map_err(|_| AnnounceError::Signature)?;
    let sig = Signature::from_slice(sig).map_err(|_| AnnounceError::Signature)?;
    // verify_strict: refuses weak keys and non-canonical signatures.
    key.verify_strict(&signed_bytes(&keys.mqtt_path, body_bytes), &sig).map_err(|_| AnnounceError::Signature)?;
    Ok(Announcement { peer: PeerId(body.peer), timestamp_ms: body.timestamp_ms, addrs: body.addrs })
}

/// Why an announcement's time was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Freshness {
    #[error("announcement is older than {} s", MAX_ANNOUNCE_AGE_MS / 1000)]
    Stale,
    #[error("announcement is dated more than {} s in the future", MAX_CLOCK_SKEW_MS / 1000)]
    Future,
}

/// Checks an announcement's timestamp against our clock.
pub fn check_fresh(timestamp_ms: u64, now_ms: u64) -> Result<(), Freshness> {
    if timestamp_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(Freshness::Future);
    }
    if timestamp_ms < now_ms.saturating_sub(MAX_ANNOUNCE_AGE_MS) {
        return Err(Freshness::Stale);
    }
    Ok(())
}

/// The mDNS service type nodes advertise and browse.
pub const MDNS_SERVICE_TYPE: &str = "_hdp._udp.local.";
/// Most topics one mDNS record carries tokens for (TXT records must fit in
/// one packet); a node on more topics advertises its first ones.
pub const MAX_MDNS_TOPICS: usize = 8;
/// Length of the per-advertisement nonce, bytes.
pub const MDNS_NONCE_LEN: usize = 16;
const MDNS_TOKEN_LEN: usize = 8;
const MDNS_TOKEN_DOMAIN: &[u8] = b"hdp/1 mdns token";
const MDNS_PAD_DOMAIN: &[u8] = b"hdp/1 mdns id";
/// Longest TXT value we look at; anything longer is not ours.
const MAX_TXT_VALUE: usize = 128;

fn mdns_token(keys: &TopicKeys, nonce: &[u8; MDNS_NONCE_LEN], id: &[u8; 32]) -> [u8; MDNS_TOKEN_LEN] {
    let mut h = blake3::Hasher::new_keyed(&keys.mdns);
    h.update(MDNS_TOKEN_DOMAIN);
    h.update(nonce);
    h.update(id);
    let mut t = [0u8; MDNS_TOKEN_LEN];
    t.copy_from_slice(&h.finalize().as_bytes()[..MDNS_TOKEN_LEN]);
    t
}

fn mdns_pad(keys: &TopicKeys, nonce: &[u8; MDNS_NONCE_LEN]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&keys.mdns);
    h.update(MDNS_PAD_DOMAIN);
    h.update(nonce);
    *h.finalize().as_bytes()
}

/// The TXT properties of our mDNS record: `v=1`, `n=hex(nonce)`, and for
/// each topic `i` (at most [`MAX_MDNS_TOPICS`]) `t<i>=hex(token ‖ sealed id)`
/// where `pad = BLAKE3-keyed(mdns key, "hdp/1 mdns id" ‖ nonce)`,
/// `sealed id = id XOR pad` and
/// `token = BLAKE3-keyed(mdns key, "hdp/1 mdns token" ‖ nonce ‖ id)[..8]`.
pub fn mdns_txt(me: &PeerId, nonce: &[u8; MDNS_NONCE_LEN], topics: &[&TopicKeys]) -> Vec<(String, String)> {
    let mut txt = vec![("v".to_owned(), "1".to_owned()), ("n".to_owned(), crate::topic::hex(nonce))];
    for (i, keys) in topics.iter().take(MAX_MDNS_TOPICS).enumerate() {
        let pad = mdns_pad(keys, nonce);
        let mut entry = Vec::with_capacity(MDNS_TOKEN_LEN + 32);
        entry.extend_from_slice(&mdns_token(keys, nonce, me.as_bytes()));
        entry.extend(me.as_bytes().iter().zip(pad).map(|(a, b)| a ^ b));
        txt.push((format!("t{i}"), crate::topic::hex(&entry)));
    }
    txt
}

/// Recognises a node from its TXT properties: the peer id and the indices
/// (into `topics`) of the topics it advertises that we are on. `None` when
/// it shares none of them, or the record is not one of ours.
pub fn mdns_recognise<'a>(
    txt: impl Fn(&str) -> Option<&'a str>,
    topics: &[&TopicKeys],
) -> Option<(PeerId, Vec<usize>)> {
    if txt("v") != Some("1") {
        return None;
    }
    let nonce: [u8; MDNS_NONCE_LEN] = unhex(txt("n")?)?.try_into().ok()?;
    let mut found: Option<PeerId> = None;
    let mut matched = Vec::new();
    for i in 0..MAX_MDNS_TOPICS {
        let Some(entry) = txt(&format!("t{i}")).and_then(unhex) else { continue };
        if entry.len() != MDNS_TOKEN_LEN + 32 {
            continue;
        }
        for (k, keys) in topics.iter().enumerate() {
            let pad = mdns_pad(keys, &nonce);
            let mut id = [0u8; 32];
            for (j, b) in id.iter_mut().enumerate() {
                *b = entry[MDNS_TOKEN_LEN + j] ^ pad[j];
            }
            let token = mdns_token(keys, &nonce, &id);
            if crate::topic::proofs_equal_slice(&token, &entry[..MDNS_TOKEN_LEN]) {
                // Every matching entry must name the same node.
                if found.is_some_and(|f| f.0 != id) {
                    return None;
                }
                found = Some(PeerId(id));
                if !matched.contains(&k) {
                    matched.push(k);
                }
            }
        }
    }
    found.map(|p| (p, matched))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() > MAX_TXT_VALUE || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::hex;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn keys(name: &str) -> TopicKeys {
        TopicKeys::derive(name)
    }

    fn identity(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn addrs() -> Vec<WireAddr> {
        vec![
            WireAddr::new(AddrKind::Local, SocketAddr::new(Ipv4Addr::new(192, 168, 1, 20).into(), 41000)),
            WireAddr::new(
                AddrKind::Local,
                SocketAddr::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x20).into(), 41000),
            ),
        ]
    }

    #[test]
    fn announcement_round_trips_and_hides_its_contents() {
        let k = keys("our film club");
        let id = identity(7);
        let payload = seal_announcement(&k, &id, 1_795_000_000_000, &addrs(), [9; 24]).unwrap();
        assert_eq!((payload.len() - 1 - 24 - 16) % ANNOUNCE_PAD, 0);
        let a = open_announcement(&k, &payload).unwrap();
        assert_eq!(a.peer, PeerId(id.verifying_key().to_bytes()));
        assert_eq!(a.timestamp_ms, 1_795_000_000_000);
        assert_eq!(a.addrs, addrs());
        // Neither the peer id nor the addresses appear in clear.
        let h = hex(&payload);
        assert!(!h.contains(&hex(&id.verifying_key().to_bytes()[..8])));
        assert!(!h.contains("c0a80114"));
    }

    #[test]
    fn announcement_is_refused_by_another_topic_and_when_tampered() {
        let k = keys("our film club");
        let payload = seal_announcement(&k, &identity(7), 5, &addrs(), [9; 24]).unwrap();
        assert_eq!(open_announcement(&keys("another club"), &payload), Err(AnnounceError::Decrypt));
        for i in 0..payload.len() {
            let mut bad = payload.clone();
            bad[i] ^= 1;
            assert!(open_announcement(&k, &bad).is_err(), "flipped byte {i}");
        }
        assert!(open_announcement(&k, &payload[..payload.len() - 1]).is_err());
        assert_eq!(open_announcement(&k, &[]), Err(AnnounceError::TooShort));
        assert_eq!(open_announcement(&k, &[1; MAX_ANNOUNCE_LEN + 1]), Err(AnnounceError::TooLong(1025)));
    }

    #[test]
    fn a_member_cannot_announce_in_another_nodes_name() {
        // A topic member knows the announce key, so it can encrypt; but the
        // signature must come from the key whose id the body carries.
        let k = keys("our film club");
        let victim = identity(1).verifying_key().to_bytes();
        let body = Body { peer: victim, timestamp_ms: 5, addrs: addrs() };
        let body = postcard::to_allocvec(&body).unwrap();
        let sig = identity(2).sign(&signed_bytes(&k.mqtt_path, &body));
        let mut plain = sig.to_bytes().to_vec();
        plain.extend_from_slice(&body);
        plain.resize(ANNOUNCE_PAD, 0);
        let cipher = XChaCha20Poly1305::new((&k.announce).into());
        let sealed =
            cipher.encrypt(XNonce::from_slice(&[3; 24]), Payload { msg: &plain, aad: &aad(&k.mqtt_path) }).unwrap();
        let payload = [&[ANNOUNCE_VERSION][..], &[3; 24], &sealed].concat();
        assert_eq!(open_announcement(&k, &payload), Err(AnnounceError::Signature));
    }

    #[test]
    fn too_many_addresses_are_cut_when_sealing() {
        let k = keys("t");
        let many: Vec<WireAddr> = (0..40)
            .map(|i| WireAddr::new(AddrKind::Local, SocketAddr::new(Ipv4Addr::new(10, 0, 0, i).into(), 1)))
            .collect();
        let a = open_announcement(&k, &seal_announcement(&k, &identity(1), 1, &many, [0; 24]).unwrap()).unwrap();
        assert_eq!(a.addrs.len(), MAX_ANNOUNCED_ADDRS);
    }

    #[test]
    fn freshness() {
        let now = 10_000_000;
        assert_eq!(check_fresh(now, now), Ok(()));
        assert_eq!(check_fresh(now - MAX_ANNOUNCE_AGE_MS, now), Ok(()));
        assert_eq!(check_fresh(now - MAX_ANNOUNCE_AGE_MS - 1, now), Err(Freshness::Stale));
        assert_eq!(check_fresh(now + MAX_CLOCK_SKEW_MS + 1, now), Err(Freshness::Future));
        assert_eq!(check_fresh(u64::MAX, 0), Err(Freshness::Future));
    }

    #[test]
    fn mdns_tokens_are_recognised_only_by_members() {
        let (a, b, c) = (keys("alpha"), keys("beta"), keys("gamma"));
        let me = PeerId(identity(4).verifying_key().to_bytes());
        let txt = mdns_txt(&me, &[5; MDNS_NONCE_LEN], &[&a, &b]);
        let get = |k: &str| txt.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(mdns_recognise(get, &[&c, &b]), Some((me, vec![1])));
        assert_eq!(mdns_recognise(get, &[&a, &b]), Some((me, vec![0, 1])));
        assert_eq!(mdns_recognise(get, &[&c]), None);
        // No peer id in clear.
        assert!(txt.iter().all(|(_, v)| !v.contains(&hex(&me.0[..8]))));
        // A different nonce gives unrelated tokens.
        let other = mdns_txt(&me, &[6; MDNS_NONCE_LEN], &[&a]);
        assert_ne!(other[2].1, txt[2].1);
    }

    #[test]
    fn mdns_tampering_and_junk_are_ignored() {
        let a = keys("alpha");
        let me = PeerId(identity(4).verifying_key().to_bytes());
        let mut txt = mdns_txt(&me, &[5; MDNS_NONCE_LEN], &[&a]);
        // Flip a bit of the sealed id: the token no longer matches.
        let v = &mut txt[2].1;
        let last = if v.ends_with('0') { '1' } else { '0' };
        v.pop();
        v.push(last);
        let get = |k: &str| txt.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(mdns_recognise(get, &[&a]), None);
        for junk in ["", "zz", "0", &"ab".repeat(200)] {
            let get = |k: &str| match k {
                "v" => Some("1"),
                _ => Some(junk),
            };
            assert_eq!(mdns_recognise(get, &[&a]), None);
        }
    }

    /// The test vectors of docs/PROTOCOL.md: `cargo test -p hdp-proto
    /// discovery::tests::vectors -- --nocapture` prints them.
    #[test]
    fn vectors() {
        let k = keys("harddrive-party test vector topic");
        let id = identity(1);
        let addr = [WireAddr::new(AddrKind::Local, SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 4433))];
        let payload = seal_announcement(&k, &id, 1_700_000_000_000, &addr, [0x42; 24]).unwrap();
        println!("announce payload: {}", hex(&payload));
        let txt = mdns_txt(&PeerId(id.verifying_key().to_bytes()), &[0x24; MDNS_NONCE_LEN], &[&k]);
        println!("mdns txt: {txt:?}");
        assert_eq!(hex(&payload), VECTOR_ANNOUNCE);
        assert_eq!(txt[2].1, VECTOR_MDNS_T0);
    }

    const VECTOR_ANNOUNCE: &str = "014242424242424242424242424242424242424242424242426e357db95ab6f2979c3d44bfd6bcbe38f6c193fa2d2c9d16df13b96e6cd9e05b2f9c06219dd75de5320a54f04ad4d97e45768ab3b81960f2c446b582070ce03e0fafd6d87092d98fb89da21f5d2918a49c72ffaaf5d80f8297417cba97a3b99b9560aab1975ca56f1ad49dba891a512fccf574c07a97b186c78120779b167d70dc8708b4f439104f4a0454248f14a73e";
    const VECTOR_MDNS_T0: &str = "89a56595fe5c4cb184bcf52044fb85b2970b4db218eac1be1f84cb2d77234fef52208b2016e1e059";
}
