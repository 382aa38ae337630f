//! The QUIC socket, shared with STUN and punch probes.
//!
//! Goals:
//! - One UDP socket for everything: the public port STUN learns and the
//!   holes probes punch are the very port QUIC runs on.
//! - quinn sees exactly what it saw before: the wrapper forwards sends and
//!   receives to quinn's own socket (GSO and GRO stay on) and only takes
//!   out datagrams that cannot be QUIC ([`hdp_proto::nat::is_nat_datagram`]:
//!   a clear fixed bit *and* the STUN cookie or the probe magic).
//!
//! Non-goals: inspecting GRO batches. A batch (`stride < len`) holds
//! same-sized datagrams from one sender, which STUN answers and probes never
//! share with QUIC packets; it goes to quinn untouched.
//!
//! # Channel
//! `side` ([`SIDE_CAPACITY`]): the datagrams taken out go to the node's NAT
//! task with `try_send`; when it is full they are dropped, which costs a
//! STUN retry or one probe of many.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hdp_proto::nat::{MAX_STUN_LEN, is_nat_datagram};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

/// NAT datagrams waiting for the NAT task: a STUN round to a few servers
/// and a burst of probes fit; more means the task is behind.
pub const SIDE_CAPACITY: usize = 256;

/// A datagram taken out of the QUIC socket's stream.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

/// quinn's socket with STUN and probes taken out; see the module docs.
pub struct Demux {
    inner: Arc<dyn AsyncUdpSocket>,
    side: mpsc::Sender<Datagram>,
    /// Datagrams dropped because `side` was full (logged at powers of two).
    dropped: AtomicU64,
}

impl fmt::Debug for Demux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demux").field("dropped", &self.dropped).finish()
    }
}

impl Demux {
    /// Wraps quinn's socket for `socket`; NAT datagrams go to the returned receiver.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<(Arc<Self>, mpsc::Receiver<Datagram>)> {
        let runtime = quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime"))?;
        let inner = runtime.wrap_udp_socket(socket)?;
        let (side, rx) = mpsc::channel(SIDE_CAPACITY);
        Ok((Arc::new(Demux { inner, side, dropped: AtomicU64::new(0) }), rx))
    }

    /// Sends one datagram from the QUIC socket (STUN, probes). A full
    /// socket buffer drops it, as the network might.
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        let t = Transmit { destination: to, ecn: None, contents: data, segment_size: None, src_ip: None };
        match self.inner.try_send(&t) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// quinn's socket, unwrapped.
    pub(crate) fn inner(&self) -> Arc<dyn AsyncUdpSocket> {
        self.inner.clone()
    }

    fn divert(&self, meta: &mut RecvMeta, buf: &[u8]) {
        let d = &buf[..meta.len.min(buf.len())];
        if meta.stride < meta.len || d.len() > MAX_STUN_LEN || !is_nat_datagram(d) {
            return;
        }
        if self.side.try_send(Datagram { from: meta.addr, data: d.to_vec() }).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::debug!(dropped, "the NAT task is behind; dropped STUN answers or probes");
            }
        }
        // quinn skips an empty buffer.
        meta.len = 0;
    }
}

impl AsyncUdpSocket for Demux {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let n = match self.inner.poll_recv(cx, bufs, meta) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        for (m, b) in meta.iter_mut().zip(bufs.iter()).take(n) {
            // Only datagrams whose first byte has QUIC's fixed bit clear are looked at.
            if b.first().is_some_and(|x| x & 0x40 == 0) {
                self.divert(m, b);
            }
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// STUN answers and probes reach the side channel; QUIC and junk do not.
    #[tokio::test]
    async fn nat_datagrams_are_taken_out() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = a.local_addr().unwrap();
        let (demux, mut side) = Demux::new(a).unwrap();
        let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let probe = hdp_proto::nat::probe(&[3; 16]);
        let mut quic = vec![0xc3u8; 1200];
        quic[1..5].copy_from_slice(&[0, 0, 0, 1]);
        // One at a time, so that GRO cannot batch them.
        let mut seen = Vec::new();
        let mut storage = vec![[0u8; 1500]; 3];
        for d in [&probe[..], &quic[..], &[0u8; 21][..]] {
            other.send_to(d, addr).await.unwrap();
            // Drive poll_recv by hand, as quinn's endpoint would.
            let mut bufs: Vec<IoSliceMut> = storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let mut meta = vec![RecvMeta::default(); 3];
            let n = std::future::poll_fn(|cx| demux.poll_recv(cx, &mut bufs, &mut meta)).await.unwrap();
            seen.extend(meta[..n].iter().map(|m| m.len));
        }
        assert_eq!(seen, [0, 1200, 21]);
        let got = side.try_recv().unwrap();
        assert_eq!(got.data, probe);
        assert_eq!(got.from, other.local_addr().unwrap());
        assert!(side.try_recv().is_err());
        demux.send_to(&probe, other.local_addr().unwrap()).unwrap();
        let mut b = [0u8; 64];
        let (n, from) = other.recv_from(&mut b).await.unwrap();
        assert_eq!((&b[..n], from), (&probe[..], addr));
    }
}
