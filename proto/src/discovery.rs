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
    /// The node's address as STUN servers see it, behind a NAT whose
    /// mapping is endpoint-independent (or not yet classified): the port is
    /// the one every peer will see.
    Reflexive = 1,
    /// A port mapping the node's router made on request (NAT-PMP or PCP):
    /// reachable from anywhere.
    Mapped = 2,
    /// The node's address as one STUN server saw it, behind a symmetric NAT:
    /// only the IP is meaningful (each destination gets another port), the
    /// target of birthday punching.
    ReflexiveSymmetric = 3,
}

impl AddrKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(AddrKind::Local),
            1 => Some(AddrKind::Reflexive),
            2 => Some(AddrKind::Mapped),
            3 => Some(AddrKind::ReflexiveSymmetric),
            _ => None,
        }
    }

    /// The name used in logs and the API.
    pub fn name(self) -> &'static str {
        match self {
            AddrKind::Local => "local",
            AddrKind::Reflexive => "reflexive",
            AddrKind::Mapped => "mapped",
            AddrKind::ReflexiveSymmetric => "reflexive-symmetric",
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

#[cfg(test)]
fn signed_bytes(mqtt_path: &[u8; 32], body: &[u8]) -> Vec<u8> {
    signed_bytes_in(SIG_DOMAIN, mqtt_path, body)
}

fn signed_bytes_in(domain: &[u8], mqtt_path: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 32 + body.len());
    m.extend_from_slice(domain);
    m.extend_from_slice(mqtt_path);
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
fn aad(mqtt_path: &[u8; 32]) -> Vec<u8> {
    [AAD_DOMAIN, mqtt_path.as_slice()].concat()
}

/// One kind of sealed message on a topic's MQTT path: its version byte and
/// the domains that keep its signatures and ciphertexts apart from the
/// other kinds'.
struct Envelope {
    version: u8,
    sig_domain: &'static [u8],
    aad_domain: &'static [u8],
}

const ANNOUNCE: Envelope = Envelope { version: ANNOUNCE_VERSION, sig_domain: SIG_DOMAIN, aad_domain: AAD_DOMAIN };
const SIGNAL: Envelope =
    Envelope { version: SIGNAL_VERSION, sig_domain: SIGNAL_SIG_DOMAIN, aad_domain: SIGNAL_AAD_DOMAIN };

impl Envelope {
    fn seal(
        &self,
        keys: &TopicKeys,
        identity: &SigningKey,
        body: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, AnnounceError> {
        let sig = identity.sign(&signed_bytes_in(self.sig_domain, &keys.mqtt_path, body));
        let mut plain = Vec::with_capacity(SIG_LEN + body.len() + ANNOUNCE_PAD);
        plain.extend_from_slice(&sig.to_bytes());
        plain.extend_from_slice(body);
        plain.resize(plain.len().div_ceil(ANNOUNCE_PAD) * ANNOUNCE_PAD, 0);
        let cipher = XChaCha20Poly1305::new((&keys.announce).into());
        let aad = [self.aad_domain, keys.mqtt_path.as_slice()].concat();
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| AnnounceError::Malformed)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(self.version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        if out.len() > MAX_ANNOUNCE_LEN {
            return Err(AnnounceError::TooLong(out.len()));
        }
        Ok(out)
    }

    /// Decrypts, decodes the body with `decode` (which returns the signer's
    /// key and the unused rest), checks the zero padding and the signature.
    fn open<T>(
        &self,
        keys: &TopicKeys,
        payload: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<(T, [u8; 32], usize), AnnounceError>,
    ) -> Result<T, AnnounceError> {
        if payload.len() > MAX_ANNOUNCE_LEN {
            return Err(AnnounceError::TooLong(payload.len()));
        }
        let (&version, rest) = payload.split_first().ok_or(AnnounceError::TooShort)?;
        if version != self.version {
            return Err(AnnounceError::Version(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN + SIG_LEN {
            return Err(AnnounceError::TooShort);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&keys.announce).into());
        let aad = [self.aad_domain, keys.mqtt_path.as_slice()].concat();
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| AnnounceError::Decrypt)?;
        let (sig, rest) = plain.split_at_checked(SIG_LEN).ok_or(AnnounceError::TooShort)?;
        let (value, signer, used) = decode(rest)?;
        let (body_bytes, padding) = rest.split_at_checked(used).ok_or(AnnounceError::Malformed)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(AnnounceError::Malformed);
        }
        let key = VerifyingKey::from_bytes(&signer).map_err(|_| AnnounceError::Signature)?;
        let sig = Signature::from_slice(sig).map_err(|_| AnnounceError::Signature)?;
        // verify_strict: refuses weak keys and non-canonical signatures.
        key.verify_strict(&signed_bytes_in(self.sig_domain, &keys.mqtt_path, body_bytes), &sig)
            .map_err(|_| AnnounceError::Signature)?;
        Ok(value)
    }
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
    ANNOUNCE.seal(keys, identity, &body, nonce)
}

/// Decrypts an announcement received on `keys`' topic and checks its
/// signature. Freshness and replays are the caller's to check
/// ([`check_fresh`] and the last timestamp it holds for the peer).
pub fn open_announcement(keys: &TopicKeys, payload: &[u8]) -> Result<Announcement, AnnounceError> {
    ANNOUNCE.open(keys, payload, |rest| {
        let (body, unused) = postcard::take_from_bytes::<Body>(rest).map_err(|_| AnnounceError::Malformed)?;
        if body.addrs.len() > MAX_ANNOUNCED_ADDRS {
            return Err(AnnounceError::TooManyAddrs);
        }
        let used = rest.len() - unused.len();
        Ok((
            Announcement { peer: PeerId(body.peer), timestamp_ms: body.timestamp_ms, addrs: body.addrs },
            body.peer,
            used,
        ))
    })
}

/// Version byte of a punch signal on a topic's MQTT path.
pub const SIGNAL_VERSION: u8 = 2;
/// Oldest punch signal acted on: punching only helps at once.
pub const MAX_SIGNAL_AGE_MS: u64 = 30 * 1000;
const SIGNAL_SIG_DOMAIN: &[u8] = b"hdp/1 signal signature";
const SIGNAL_AAD_DOMAIN: &[u8] = b"hdp/1 signal";

/// A request to open a direct path: `from` asks `to` to take part in a
/// punch session identified by `token`, and lists where `from` can be
/// reached (typed, as in announcements). Sealed like an announcement under
/// the topic's key (version byte 2, its own signature and AEAD domains), so
/// only topic members read it and only `from` can have written it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub from: PeerId,
    pub to: PeerId,
    /// Unix time in milliseconds, by the sender's clock.
    pub timestamp_ms: u64,
    pub token: [u8; 16],
    pub addrs: Vec<WireAddr>,
}

#[derive(Serialize, Deserialize)]
struct SignalBody {
    from: [u8; 32],
    to: [u8; 32],
    timestamp_ms: u64,
    token: [u8; 16],
    addrs: Vec<WireAddr>,
}

/// Seals a punch signal (signed by `identity`, which is `from`).
pub fn seal_signal(
    keys: &TopicKeys,
    identity: &SigningKey,
    to: &PeerId,
    timestamp_ms: u64,
    token: [u8; 16],
    addrs: &[WireAddr],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, AnnounceError> {
    let addrs = &addrs[..addrs.len().min(MAX_ANNOUNCED_ADDRS)];
    let body =
        SignalBody { from: identity.verifying_key().to_bytes(), to: to.0, timestamp_ms, token, addrs: addrs.to_vec() };
    let body = postcard::to_allocvec(&body).map_err(|_| AnnounceError::Malformed)?;
    SIGNAL.seal(keys, identity, &body, nonce)
}

/// Opens a punch signal and checks its signature; freshness and replays
/// are the caller's to check, as for announcements.
pub fn open_signal(keys: &TopicKeys, payload: &[u8]) -> Result<Signal, AnnounceError> {
    SIGNAL.open(keys, payload, |rest| {
        let (b, unused) = postcard::take_from_bytes::<SignalBody>(rest).map_err(|_| AnnounceError::Malformed)?;
        if b.addrs.len() > MAX_ANNOUNCED_ADDRS {
            return Err(AnnounceError::TooManyAddrs);
        }
        let used = rest.len() - unused.len();
        let s = Signal {
            from: PeerId(b.from),
            to: PeerId(b.to),
            timestamp_ms: b.timestamp_ms,
            token: b.token,
            addrs: b.addrs,
        };
        Ok((s, b.from, used))
    })
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
        let typed = [
            WireAddr::new(AddrKind::Local, SocketAddr::new(Ipv4Addr::new(198, 18, 1, 2).into(), 4433)),
            WireAddr::new(AddrKind::Reflexive, SocketAddr::new(Ipv4Addr::new(203, 0, 113, 11).into(), 4433)),
            WireAddr::new(AddrKind::Mapped, SocketAddr::new(Ipv4Addr::new(203, 0, 113, 11).into(), 5000)),
        ];
        let payload = seal_announcement(&k, &id, 1_700_000_000_000, &typed, [0x42; 24]).unwrap();
        println!("typed announce payload: {}", hex(&payload));
        let to = PeerId(identity(2).verifying_key().to_bytes());
        let signal = seal_signal(&k, &id, &to, 1_700_000_000_000, [0x11; 16], &typed, [0x42; 24]).unwrap();
        println!("signal payload: {}", hex(&signal));
        assert_eq!(hex(&payload), VECTOR_TYPED_ANNOUNCE);
        assert_eq!(hex(&signal), VECTOR_SIGNAL);
    }

    const VECTOR_TYPED_ANNOUNCE: &str = "01424242424242424242424242424242424242424242424242a2aad6d546ab50d743be76a2b40ab255d0bc5d5ee2ee7834f8d9b320a3e07bc70af53008f679ec1043b0ca4f03c96f44f12ea5c6f3d728131bae219756347c3f0fafd6d87092d98fb89da21f5d2918a49c72ffaaf5d80f8297417cba97a3b99b9560aab1975ca76f1ad28fb98a1a512ecc3e74b171469384c74a2006909e5a70b7f4b355220d59d0db48f8a888ad2115";
    const VECTOR_SIGNAL: &str = "02424242424242424242424242424242424242424242424242cd3c4ef7f01e7ad0c3d2cb8dbec2ec1b91cc4e47933f9d32d9c47e12d2e7e2ce628ea16a021a57e441e78663c4e645183e9af12e12eed763b7c2e5a2c84b193a0fafd6d87092d98fb89da21f5d2918a49c72ffaaf5d80f8297417cba97a3b99b948948408310b3304cb7c9de4b870de30778fe51ce7986249a772f2c14dfcee47f1e0b945efc5aa32e160750b4933c4a38b06931a84a7ce6d8d5c0fa30d7cb1dfa60866a47aa57dee0a5af75a59cd6c0799c940cb864d3633bd80b41d5a174ef9a23d61894cffee29b4b990602393e14f4d4edfe336d46d9bd550e7bc7c679cd615b76f5c60ffabad2d007e9b5bf557ced36777ede1df4886596b9828b97370ef472f5170994eac092d2afd9253d1a99";

    #[test]
    fn signals_round_trip_and_are_not_announcements() {
        let k = keys("our film club");
        let to = PeerId(identity(8).verifying_key().to_bytes());
        let s = seal_signal(&k, &identity(7), &to, 42, [5; 16], &addrs(), [1; 24]).unwrap();
        assert_eq!(s[0], SIGNAL_VERSION);
        let got = open_signal(&k, &s).unwrap();
        assert_eq!(got.from, PeerId(identity(7).verifying_key().to_bytes()));
        assert_eq!((got.to, got.timestamp_ms, got.token, got.addrs), (to, 42, [5; 16], addrs()));
        // An old node reading a signal as an announcement refuses its version.
        assert_eq!(open_announcement(&k, &s), Err(AnnounceError::Version(SIGNAL_VERSION)));
        let a = seal_announcement(&k, &identity(7), 42, &addrs(), [1; 24]).unwrap();
        assert_eq!(open_signal(&k, &a), Err(AnnounceError::Version(ANNOUNCE_VERSION)));
        // The version byte is not what keeps them apart: the domains are.
        let mut relabelled = a.clone();
        relabelled[0] = SIGNAL_VERSION;
        assert!(open_signal(&k, &relabelled).is_err());
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 1;
            assert!(open_signal(&k, &bad).is_err(), "flipped byte {i}");
        }
    }

    #[test]
    fn new_address_kinds_decode_and_unknown_ones_survive() {
        let k = keys("t");
        let a = |kind: u8| WireAddr { kind, ip: Ipv4Addr::new(203, 0, 113, 11).into(), port: 40000 };
        let list = [a(0), a(1), a(2), a(3), a(200)];
        let got = open_announcement(&k, &seal_announcement(&k, &identity(1), 1, &list, [0; 24]).unwrap()).unwrap();
        let kinds: Vec<Option<AddrKind>> = got.addrs.iter().map(|w| AddrKind::from_u8(w.kind)).collect();
        use AddrKind::*;
        assert_eq!(kinds, [Some(Local), Some(Reflexive), Some(Mapped), Some(ReflexiveSymmetric), None]);
    }

    const VECTOR_ANNOUNCE: &str = "014242424242424242424242424242424242424242424242426e357db95ab6f2979c3d44bfd6bcbe38f6c193fa2d2c9d16df13b96e6cd9e05b2f9c06219dd75de5320a54f04ad4d97e45768ab3b81960f2c446b582070ce03e0fafd6d87092d98fb89da21f5d2918a49c72ffaaf5d80f8297417cba97a3b99b9560aab1975ca56f1ad49dba891a512fccf574c07a97b186c78120779b167d70dc8708b4f439104f4a0454248f14a73e";
    const VECTOR_MDNS_T0: &str = "89a56595fe5c4cb184bcf52044fb85b2970b4db218eac1be1f84cb2d77234fef52208b2016e1e059";
}
