//! Learning our public address: STUN binding requests from the QUIC socket.
//!
//! A round asks every configured server once (retrying after 0.5 s and
//! 1.5 s, RFC 8489's doubling), waits at most [`ROUND_TIMEOUT`], and
//! classifies the answers ([`hdp_proto::nat::NatKind::classify`]). Rounds
//! repeat every [`STUN_PERIOD`] (sooner while nothing answers), so a
//! changed public port is noticed and re-announced. Nothing here blocks
//! start-up, and no answer is never an error: the node then simply has no
//! public address to announce.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdp_proto::nat::{STUN_TXID_LEN, parse_binding_response, stun_binding_request, stun_txid};
use tokio::sync::oneshot;
use tracing::debug;

use super::socket::Demux;
use crate::lock;

/// Time between STUN rounds once one succeeded. QUIC keep-alives hold the
/// NAT mapping open; the rounds notice when the public port changes.
pub const STUN_PERIOD: Duration = Duration::from_secs(60);
/// Delay of a round asked for by a dropped connection (see `Net::recheck`).
pub const RECHECK_DELAY: Duration = Duration::from_secs(1);
/// Time between rounds while no server answers.
pub const STUN_RETRY: Duration = Duration::from_secs(15);
/// Longest wait for one server's answer in a round.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(3);
/// Servers asked per round, at most (the rest of a long list is ignored).
pub const MAX_STUN_SERVERS: usize = 4;
/// Public STUN servers asked when `--stun` is not given: two operators,
/// three addresses, so the mapping can be classified.
pub const DEFAULT_STUN: &[&str] = &["stun.l.google.com:19302", "stun1.l.google.com:19302", "stun.cloudflare.com:3478"];

/// STUN transactions waiting for their answer, by transaction id. At most
/// [`MAX_STUN_SERVERS`] per round, and rounds do not overlap.
#[derive(Debug, Default)]
pub struct Pending(std::sync::Mutex<HashMap<[u8; STUN_TXID_LEN], oneshot::Sender<SocketAddr>>>);

impl Pending {
    /// Hands an answer to the transaction waiting for it, if any.
    pub fn answer(&self, d: &[u8]) {
        let Some(txid) = stun_txid(d) else { return };
        let Some(tx) = lock(&self.0).remove(&txid) else { return };
        match parse_binding_response(d) {
            Ok(addr) => {
                let _ = tx.send(addr);
            }
            Err(e) => debug!(error = %e, "ignored a STUN answer"),
        }
    }
}

/// One server's answer in a round.
#[derive(Debug, Clone)]
pub struct Answer {
    pub server: SocketAddr,
    pub mapped: SocketAddr,
}

/// Asks every server in `servers` once; returns the answers that came.
pub async fn round(socket: &Arc<Demux>, pending: &Arc<Pending>, servers: &[String], ipv4: bool) -> Vec<Answer> {
    let mut asks = tokio::task::JoinSet::new();
    for host in servers.iter().take(MAX_STUN_SERVERS) {
        let (socket, pending, host) = (socket.clone(), pending.clone(), host.clone());
        asks.spawn(async move { ask(&socket, &pending, &host, ipv4).await });
    }
    let mut out: Vec<Answer> = Vec::new();
    while let Some(r) = asks.join_next().await {
        if let Ok(Some(a)) = r {
            // Two names of one server tell nothing new.
            if !out.iter().any(|o| o.server.ip() == a.server.ip()) {
                out.push(a);
            }
        }
    }
    out
}

async fn ask(socket: &Demux, pending: &Pending, host: &str, ipv4: bool) -> Option<Answer> {
    let resolved = tokio::time::timeout(ROUND_TIMEOUT, tokio::net::lookup_host(host)).await.ok()?.ok()?;
    let server = resolved.into_iter().find(|a| a.is_ipv4() == ipv4)?;
    let mut txid = [0u8; STUN_TXID_LEN];
    getrandom::fill(&mut txid).ok()?;
    let (tx, mut rx) = oneshot::channel();
    lock(&pending.0).insert(txid, tx);
    let request = stun_binding_request(&txid);
    let deadline = tokio::time::Instant::now() + ROUND_TIMEOUT;
    let mut wait = Duration::from_millis(500);
    let got = loop {
        if let Err(e) = socket.send_to(&request, server) {
            debug!(%server, error = %e, "cannot send a STUN request");
        }
        let until = (tokio::time::Instant::now() + wait).min(deadline);
        match tokio::time::timeout_at(until, &mut rx).await {
            Ok(Ok(addr)) => break Some(addr),
            Ok(Err(_)) => break None,
            Err(_) if until >= deadline => break None,
            Err(_) => wait *= 2,
        }
    };
    lock(&pending.0).remove(&txid);
    got.map(|mapped| Answer { server, mapped })
}
