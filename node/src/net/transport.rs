//! QUIC transport: one quinn endpoint on one UDP socket, TLS 1.3 with both
//! ends authenticated by their ed25519 identity keys.
//!
//! Goals:
//! - A peer's identity is the ed25519 key in its certificate, proven by the
//!   TLS 1.3 CertificateVerify signature, checked here with that very key.
//!   No certificate authorities, names or validity dates are involved.
//! - The protocol version rides in ALPN (`hdp/1`); a mismatch fails the TLS
//!   handshake with `no_application_protocol`.
//! - Transport parameters are chosen for slow, flaky links on small machines
//!   (see the constants and docs/ARCHITECTURE.md).
//!
//! - The socket is quinn's, wrapped by [`super::socket::Demux`], which takes
//!   STUN answers and punch probes out before quinn sees them.
//!
//! Non-goals: connection migration initiated by us (a NAT rebinding on the
//! dialing side is followed by quinn's path validation on the listener).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hdp_proto::cert::ed25519_key_from_cert;
use hdp_proto::id::PeerId;
use hdp_proto::wire::ALPN;
use quinn::{IdleTimeout, VarInt};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use tracing::info;

use super::socket::{Datagram, Demux};
use crate::identity::Identity;
use tokio::sync::mpsc;

/// Per-stream receive window: one download fills 100 Mbit/s at 100 ms RTT
/// (bandwidth-delay product 1.25 MB) with room to spare.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Per-connection receive window: caps what all streams of one peer may
/// have in flight towards us, whatever the number of streams.
pub const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Per-connection send buffer.
pub const SEND_WINDOW: u64 = 4 * 1024 * 1024;
/// Concurrent request streams a peer may open to us. A folder of small
/// files keeps many requests in flight (a `read` and a `hash` per file) so
/// that a long link stays full, and a stream's credit comes back to the
/// peer only about two round trips after it opened it: 1,024 streams keep
/// 512 small files moving, about 4,000 a second at 60 ms RTT. Each waiting
/// request holds no buffer (the upload slots bound the reads); the
/// connection window bounds what all of them may make us buffer. The most a
/// connection gets: peers share [`crate::peers::STREAM_BUDGET`].
pub const MAX_STREAMS: u32 = 1024;
/// Streams a connection may open before it finished the topic handshake:
/// the handshake's own, and a few requests sent right after it. Registered
/// connections get their share of the budget ([`crate::peers`]).
pub const INITIAL_STREAMS: u32 = crate::peers::MIN_PEER_STREAMS;
/// Kernel buffer asked for on the QUIC socket, each way. Datagrams that
/// arrive while the node's async thread is busy (copying a buffer, handing
/// one to the disk) wait here instead of being dropped: at Linux's usual
/// 208 KiB, a 1 GiB download over loopback lost a few hundred datagrams,
/// and every loss shrinks the congestion window. Linux caps the request at
/// `net.core.rmem_max` / `wmem_max`. Kernel memory, used only while data
/// waits in it.
pub const SOCKET_BUFFER: usize = 2 * 1024 * 1024;
/// Keep-alive: NAT bindings and idle Wi-Fi links survive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A peer silent this long is gone: four keep-alives missed. A Wi-Fi blip
/// of a few seconds is survived; a path that died (a router that renumbered
/// its mappings, a friend's machine that lost power) is noticed soon enough
/// to redial, punch again and resume the transfers within half a minute.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Name put in (and ignored from) TLS: identities are keys, not names.
const SERVER_NAME: &str = "hdp";

/// Setting up the endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind the QUIC socket on {addr}: {source}. Is the port in use? Choose another with --listen")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot make our TLS certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration error: {0}")]
    Tls(String),
}

/// A certificate chain and key made from the node's identity.
#[derive(Debug)]
pub struct TlsIdentity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// A self-signed certificate for the identity key (rcgen).
    pub fn new(identity: &Identity) -> Result<Self, TransportError> {
        let pkcs8 = ed25519_pkcs8(&identity.signing_key().to_bytes());
        let key_pair =
            rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| TransportError::Certificate(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .map_err(|e| TransportError::Certificate(e.to_string()))?;
        let cert = params.self_signed(&key_pair).map_err(|e| TransportError::Certificate(e.to_string()))?;
        Ok(TlsIdentity { cert: cert.der().clone(), key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)) })
    }
}

/// PKCS#8 v1 (RFC 8410) of an ed25519 secret key: a fixed prefix and the seed.
pub fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(seed);
    der
}

/// ring's provider with the cipher suites ordered for this CPU: AES-128-GCM
/// where the CPU has AES instructions (x86-64, most 64-bit ARM), else
/// ChaCha20-Poly1305, which is several times faster in software (a
/// Raspberry Pi 4 has no AES instructions). AES-256 comes last: it costs
/// more than AES-128 and buys nothing here.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    let suites = if cpu_has_aes() {
        vec![TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_256_GCM_SHA384]
    } else {
        vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384]
    };
    Arc::new(rustls::crypto::CryptoProvider { cipher_suites: suites, ..rustls::crypto::ring::default_provider() })
}

fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Transport parameters for every connection.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(SEND_WINDOW)
        .max_concurrent_bidi_streams(VarInt::from_u32(INITIAL_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    if std::env::var(CONGESTION_ENV).is_ok_and(|v| v == "cubic") {
        t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
    } else {
        t.congestion_controller_factory(Arc::new(super::congestion::LossTolerantConfig::default()));
    }
    Arc::new(t)
}

/// Set to `cubic`, connections use quinn's plain Cubic instead of ours
/// ([`super::congestion`]): only for the same-run A/B of `scripts/bench.sh`.
/// (quinn's BBR is not offered: linking it costs the Pi binary 50 KB, and
/// it filled the shaped link 10 % short of TCP with and without loss.)
pub const CONGESTION_ENV: &str = "HDP_CONGESTION";

/// The client (dialing) configuration, presenting `certified` as our certificate.
pub fn client_config(certified: Arc<CertifiedKey>) -> Result<quinn::ClientConfig, TransportError> {
    client_config_with_alpn(certified, ALPN)
}

/// [`client_config`] offering another ALPN (tests of version mismatches).
pub fn client_config_with_alpn(
    certified: Arc<CertifiedKey>,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, TransportError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerVerifier))
        .with_client_cert_resolver(Arc::new(FixedClientCert(certified)));
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// The server (accepting) configuration.
pub fn server_config(id: &TlsIdentity) -> Result<quinn::ServerConfig, TransportError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(PeerVerifier))
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// A certificate and signing key, as rustls wants them.
pub fn certified_key(
    cert: CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TransportError> {
    let signer =
        provider().key_provider.load_private_key(key.clone_key()).map_err(|e| TransportError::Tls(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signer)))
}

/// Endpoint settings. The stateless-reset key and the connection-id key
/// derive from the identity, so after a crash and restart on the same port
/// this node still recognises the connection ids it handed out before and
/// answers their packets with a valid stateless reset: peers learn at once
/// that the old connection is gone (instead of waiting for the idle timeout)
/// and redial.
fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let secret = identity.signing_key().to_bytes();
    let reset = blake3::derive_key(RESET_KEY_CONTEXT, &secret);
    let mut config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset)));
    // Peers must keep QUIC's fixed bit set (we do not advertise
    // grease_quic_bit): the socket wrapper tells STUN and probes from QUIC
    // by that bit (see net::socket).
    config.grease_quic_bit(false);
    let cid = blake3::derive_key(CID_KEY_CONTEXT, &secret);
    let cid_key = u64::from_le_bytes([cid[0], cid[1], cid[2], cid[3], cid[4], cid[5], cid[6], cid[7]]);
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    config
}

const RESET_KEY_CONTEXT: &str = "harddrive-party 2026-11 stateless reset key v1";
const CID_KEY_CONTEXT: &str = "harddrive-party 2026-11 connection id key v1";

/// The node's QUIC endpoint.
#[derive(Debug, Clone)]
pub struct Transport {
    pub endpoint: quinn::Endpoint,
    /// The endpoint's socket, for STUN and probes.
    pub socket: Arc<Demux>,
    pub client: quinn::ClientConfig,
    /// The socket's receive and send buffers as the kernel reports them
    /// (Linux reports twice what it grants the data).
    pub recv_buffer: usize,
    pub send_buffer: usize,
}

/// Asks for [`SOCKET_BUFFER`] each way and says so when the kernel gives
/// less; returns what it reports.
fn size_buffers(socket: &UdpSocket) -> std::io::Result<(usize, usize)> {
    let state = quinn::udp::UdpSocketState::new(socket.into())?;
    // Refusals only leave the kernel's default in place: not fatal.
    let _ = state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER);
    let _ = state.set_send_buffer_size(socket.into(), SOCKET_BUFFER);
    let recv = state.recv_buffer_size(socket.into())?;
    let send = state.send_buffer_size(socket.into())?;
    // Linux reports twice what it grants.
    if recv < 2 * SOCKET_BUFFER {
        info!(
            granted = recv,
            wanted = SOCKET_BUFFER,
            "the kernel capped the QUIC socket's receive buffer; fast transfers may lose packets. \
             Raise it with: sysctl -w net.core.rmem_max=4194304"
        );
    }
    Ok((recv, send))
}

/// Set to `off`, quinn gets its socket without the wrapper (STUN and
/// punching then cannot work): only for the same-run A/B of
/// `scripts/bench-transfer.sh`, which checks the wrapper costs nothing.
pub const DEMUX_ENV: &str = "HDP_SOCKET_DEMUX";

impl Transport {
    /// Binds `addr` and sets up both sides of TLS. The receiver gets the
    /// STUN answers and probes that arrive on the socket.
    pub fn bind(identity: &Identity, addr: SocketAddr) -> Result<(Self, mpsc::Receiver<Datagram>), TransportError> {
        let tls = TlsIdentity::new(identity)?;
        let socket = UdpSocket::bind(addr).map_err(|source| TransportError::Bind { addr, source })?;
        let (recv_buffer, send_buffer) =
            size_buffers(&socket).map_err(|source| TransportError::Bind { addr, source })?;
        let runtime = quinn::default_runtime().ok_or_else(|| TransportError::Tls("no async runtime".into()))?;
        let (demux, side) = Demux::new(socket).map_err(|source| TransportError::Bind { addr, source })?;
        let quinn_socket: Arc<dyn quinn::AsyncUdpSocket> =
            if std::env::var(DEMUX_ENV).is_ok_and(|v| v == "off") { demux.inner() } else { demux.clone() };
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config(identity),
            Some(server_config(&tls)?),
            quinn_socket,
            runtime,
        )
        .map_err(|source| TransportError::Bind { addr, source })?;
        let client = client_config(certified_key(tls.cert.clone(), &tls.key)?)?;
        Ok((Transport { endpoint, socket: demux, client, recv_buffer, send_buffer }, side))
    }

    /// A client-only endpoint on `socket` (a birthday-punch socket that won):
    /// connections dialed from it run over that socket's NAT mapping.
    /// Its stateless-reset key is random: nothing dials this endpoint, so
    /// there is nothing to recognise after a restart.
    pub fn client_on(&self, socket: UdpSocket) -> Result<quinn::Endpoint, TransportError> {
        let addr = socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let runtime = quinn::default_runtime().ok_or_else(|| TransportError::Tls("no async runtime".into()))?;
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
            .map_err(|source| TransportError::Bind { addr, source })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Starts a connection to `addr` (the TLS handshake runs when awaited).
    pub fn connect(&self, addr: SocketAddr) -> Result<quinn::Connecting, quinn::ConnectError> {
        self.endpoint.connect_with(self.client.clone(), addr, SERVER_NAME)
    }

    /// Starts a connection to `addr` from another endpoint (see [`Transport::client_on`]).
    pub fn connect_from(
        &self,
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
    ) -> Result<quinn::Connecting, quinn::ConnectError> {
        endpoint.connect_with(self.client.clone(), addr, SERVER_NAME)
    }
}

/// The peer id of an established connection: the key in its certificate.
pub fn remote_peer_id(conn: &quinn::Connection) -> Option<PeerId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let first = certs.first()?;
    ed25519_key_from_cert(first).ok().map(PeerId)
}

/// Accepts any ed25519 certificate, and checks handshake signatures with its key.
#[derive(Debug)]
struct PeerVerifier;

fn check_cert(cert: &CertificateDer<'_>) -> Result<[u8; 32], rustls::Error> {
    ed25519_key_from_cert(cert).map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// Verifies a TLS 1.3 CertificateVerify signature with the certificate's ed25519 key.
fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(bad());
    }
    let key = check_cert(cert)?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
    let sig = ed25519_dalek::Signature::from_slice(dss.signature()).map_err(|_| bad())?;
    vk.verify_strict(message, &sig).map_err(|_| bad())?;
    Ok(HandshakeSignatureValid::assertion())
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_cert(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_cert(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Always presents the same certificate.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux grants min(asked, net.core.rmem_max) and reports twice that.
    #[tokio::test]
    async fn socket_buffers_are_raised_as_far_as_the_kernel_allows() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::load_or_create(dir.path()).unwrap();
        let (t, _) = Transport::bind(&identity, "127.0.0.1:0".parse().unwrap()).unwrap();
        let max = |name: &str| -> usize {
            std::fs::read_to_string(format!("/proc/sys/net/core/{name}")).unwrap().trim().parse().unwrap()
        };
        assert_eq!(t.recv_buffer, 2 * SOCKET_BUFFER.min(max("rmem_max")));
        assert_eq!(t.send_buffer, 2 * SOCKET_BUFFER.min(max("wmem_max")));
    }
}
