//! Friends: every node we completed a topic handshake with, remembered in
//! the index's `friends` database: its derived name, a nickname our user may
//! give it, first and last seen, the topics it proved, where it was reached
//! and how, and whether it is blocked.
//!
//! Goals:
//! - Friends outlive the broker: after a restart the most recently seen ones
//!   are redialed at their last addresses ([`Friends::redial_list`], used by
//!   [`crate::peers::Peers::start`]) even when MQTT and mDNS find nothing.
//! - Blocking is cheap to check where it matters: right after TLS on every
//!   connection, before every dial, for every announcement. The records live
//!   in memory; LMDB is written on the blocking pool when one changes.
//!
//! Non-goals: sharing the list between a user's devices; trust levels
//! beyond blocked or not (issue 17's shares per topic decide visibility).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hdp_proto::api::{FriendAddr, FriendInfo, FriendUpdate, MAX_NICKNAME_LEN, PathKind};
use hdp_proto::id::PeerId;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::index::{Index, RecordError};
use crate::lock;

/// Friends remembered at most; when full, the one seen longest ago that is
/// not blocked is forgotten. A circle of friends is dozens.
pub const MAX_FRIENDS: usize = 1024;
/// Addresses remembered per friend, most recent first.
pub const MAX_FRIEND_ADDRS: usize = 8;
/// Friends redialed at start, the most recently seen first.
pub const REDIAL_FRIENDS: usize = 64;

/// A friend request could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum FriendError {
    #[error("no friend called {0:?}: `hdp friends` lists them (name, nickname or id prefix)")]
    NotFound(String),
    #[error("{0:?} names more than one friend: give more of its id")]
    Ambiguous(String),
    #[error("a nickname is at most {MAX_NICKNAME_LEN} bytes without control characters")]
    Nickname,
    #[error("cannot save the friend list: {0}")]
    Store(#[from] RecordError),
    #[error("cannot encode a friend record: {0}")]
    Encode(String),
}

/// What is stored per friend (JSON in LMDB).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    #[serde(default)]
    nickname: Option<String>,
    first_seen: i64,
    last_seen: i64,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    addrs: Vec<FriendAddr>,
    #[serde(default)]
    blocked: bool,
}

/// The friend list, in memory, written through to the index.
#[derive(Debug)]
pub struct Friends {
    index: Index,
    map: Mutex<HashMap<PeerId, Record>>,
    /// Held while a record is written: each write takes the record as it is
    /// then, so writes from the background never land an older state after
    /// a newer one. (The map's own lock is never held across a commit: the
    /// accept path reads it.)
    write: Mutex<()>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Friends {
    /// Loads the list; a record that does not decode is skipped with a warning.
    pub fn load(index: Index) -> Friends {
        let mut map = HashMap::new();
        match index.friends_load(MAX_FRIENDS) {
            Ok(all) => {
                for (id, bytes) in all {
                    match serde_json::from_slice::<Record>(&bytes) {
                        Ok(r) => {
                            map.insert(PeerId(id), r);
                        }
                        Err(e) => warn!(peer = %PeerId(id), error = %e, "skipping an unreadable friend record"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot read the friend list; starting without it"),
        }
        Friends { index, map: Mutex::new(map), write: Mutex::new(()) }
    }

    pub fn is_blocked(&self, id: &PeerId) -> bool {
        lock(&self.map).get(id).is_some_and(|r| r.blocked)
    }

    /// Records a completed handshake with `id`, reached at `addr` over
    /// `path`, proving `topics`; saved in the background.
    pub fn seen(self: &Arc<Self>, id: PeerId, topics: &[String], addr: SocketAddr, path: PathKind) {
        let now = unix_now();
        {
            let mut map = lock(&self.map);
            if !map.contains_key(&id) && map.len() >= MAX_FRIENDS {
                let oldest = map.iter().filter(|(_, r)| !r.blocked).min_by_key(|(_, r)| r.last_seen).map(|(k, _)| *k);
                match oldest {
                    Some(k) => {
                        map.remove(&k);
                    }
                    None => return,
                }
            }
            let r = map.entry(id).or_insert_with(|| Record { first_seen: now, ..Record::default() });
            r.last_seen = now;
            r.topics = topics.to_vec();
            let addr = addr.to_string();
            r.addrs.retain(|a| a.addr != addr);
            r.addrs.insert(0, FriendAddr { addr, path, seen: now });
            r.addrs.truncate(MAX_FRIEND_ADDRS);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = this.persist(id) {
                warn!(peer = %id, error = %e, "cannot save a friend record");
            }
        });
    }

    /// Writes friend `id` as it is now (see [`Friends::write`]).
    fn persist(&self, id: PeerId) -> Result<(), FriendError> {
        let _w = lock(&self.write);
        let bytes = match lock(&self.map).get(&id) {
            Some(r) => serde_json::to_vec(r).map_err(|e| FriendError::Encode(e.to_string()))?,
            None => return Ok(()),
        };
        self.index.friend_put(&id.0, &bytes)?;
        Ok(())
    }

    /// The friend `query` names: its nickname, its derived name, or a prefix
    /// of its id (at least 4 characters).
    pub fn resolve(&self, query: &str) -> Result<PeerId, FriendError> {
        let map = lock(&self.map);
        let q = query.trim();
        let by = |f: &dyn Fn(&PeerId, &Record) -> bool| {
            map.iter().filter(|(k, r)| f(k, r)).map(|(k, _)| *k).collect::<Vec<_>>()
        };
        for found in [
            by(&|_, r| r.nickname.as_deref() == Some(q)),
            by(&|k, _| k.friendly_name() == q),
            if q.len() >= 4 { by(&|k, _| k.to_string().starts_with(q)) } else { Vec::new() },
        ] {
            match found.len() {
                0 => continue,
                1 => return Ok(found[0]),
                _ => return Err(FriendError::Ambiguous(q.to_owned())),
            }
        }
        Err(FriendError::NotFound(q.to_owned()))
    }

    /// Applies `u` to friend `id` and saves it. Touches LMDB: call it on the
    /// blocking pool.
    pub fn update(&self, id: PeerId, u: &FriendUpdate) -> Result<(), FriendError> {
        if let Some(n) = &u.nickname
            && (n.len() > MAX_NICKNAME_LEN || n.chars().any(char::is_control))
        {
            return Err(FriendError::Nickname);
        }
        {
            let mut map = lock(&self.map);
            let r = map.get_mut(&id).ok_or_else(|| FriendError::NotFound(id.to_string()))?;
            if let Some(n) = &u.nickname {
                let n = n.trim();
                r.nickname = (!n.is_empty()).then(|| n.to_owned());
            }
            if let Some(b) = u.blocked {
                r.blocked = b;
            }
        }
        self.persist(id)
    }

    /// Every friend, the most recently seen first.
    pub fn list(&self, connected: impl Fn(&PeerId) -> bool) -> Vec<FriendInfo> {
        let map = lock(&self.map);
        let mut out: Vec<FriendInfo> = map
            .iter()
            .map(|(id, r)| FriendInfo {
                id: *id,
                name: id.friendly_name(),
                nickname: r.nickname.clone(),
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                topics: r.topics.clone(),
                addrs: r.addrs.clone(),
                blocked: r.blocked,
                connected: connected(id),
            })
            .collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
        out
    }

    /// The friends to redial at start: not blocked, the [`REDIAL_FRIENDS`]
    /// most recently seen, each with its addresses that can be dialed again
    /// (LAN, direct, mapped; punched holes close behind a connection).
    pub fn redial_list(&self) -> Vec<(PeerId, Vec<SocketAddr>)> {
        let map = lock(&self.map);
        let mut all: Vec<_> = map.iter().filter(|(_, r)| !r.blocked).collect();
        all.sort_by_key(|(_, r)| std::cmp::Reverse(r.last_seen));
        all.into_iter()
            .take(REDIAL_FRIENDS)
            .filter_map(|(id, r)| {
                let addrs: Vec<SocketAddr> = r
                    .addrs
                    .iter()
                    .filter(|a| matches!(a.path, PathKind::Lan | PathKind::Direct | PathKind::Mapped))
                    .filter_map(|a| a.addr.parse().ok())
                    .collect();
                (!addrs.is_empty()).then_some((*id, addrs))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn friends_are_remembered_named_blocked_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let index = Index::open(&tmp.path().join("index")).unwrap();
        let f = Arc::new(Friends::load(index.clone()));
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let addr: SocketAddr = "192.168.1.20:4433".parse().unwrap();
        f.seen(a, &["family".into()], addr, PathKind::Lan);
        f.seen(b, &["music".into()], "203.0.113.9:5000".parse().unwrap(), PathKind::Punched);
        f.seen(a, &["family".into()], "198.51.100.7:4433".parse().unwrap(), PathKind::Direct);
        assert_eq!(f.resolve(&a.friendly_name()).unwrap(), a);
        assert_eq!(f.resolve(&b.to_string()[..6]).unwrap(), b);
        assert!(matches!(f.resolve("nobody"), Err(FriendError::NotFound(_))));
        f.update(a, &FriendUpdate { nickname: Some("Alice".into()), blocked: None }).unwrap();
        f.update(b, &FriendUpdate { nickname: None, blocked: Some(true) }).unwrap();
        assert!(f.update(a, &FriendUpdate { nickname: Some("a\nb".into()), blocked: None }).is_err());
        assert_eq!(f.resolve("Alice").unwrap(), a);
        assert!(f.is_blocked(&b) && !f.is_blocked(&a));
        // Redial: a at both addresses, most recent first; b is blocked.
        let redial = f.redial_list();
        assert_eq!(redial, vec![(a, vec!["198.51.100.7:4433".parse().unwrap(), addr])]);
        // Saved: a new load sees the same (the `seen` writes are in the background).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let again = Friends::load(index);
        let list = again.list(|_| false);
        assert_eq!(list.len(), 2);
        let alice = list.iter().find(|x| x.id == a).unwrap();
        assert_eq!(
            (alice.nickname.as_deref(), alice.addrs.len(), alice.topics.clone()),
            (Some("Alice"), 2, vec!["family".to_owned()])
        );
        assert!(list.iter().find(|x| x.id == b).unwrap().blocked);
    }
}
