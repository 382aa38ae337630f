//! Group commit: work items handed over one by one, drained in groups by at
//! most a fixed number of blocking tasks, so that what costs one sync or
//! one LMDB commit is paid once per group instead of once per item.
//!
//! [`Group::push`] adds an item and says whether the caller must start a
//! drainer; a drainer calls [`Group::next`] until it returns `None`. The
//! only subtle part, an item pushed while the last drainer is leaving, is
//! handled here: the leaving drainer takes it over unless enough others run.
//! The list holds what its users hand over; each user bounds that (one item
//! per active file, see the users).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::lock;

/// See the module docs.
#[derive(Debug)]
pub struct Group<T> {
    pending: Mutex<Vec<T>>,
    /// Drainers running, at most `drainers`.
    running: AtomicUsize,
    drainers: usize,
    /// Items one drainer takes at a time, at most.
    max: usize,
}

impl<T> Group<T> {
    pub fn new(drainers: usize, max: usize) -> Self {
        Group { pending: Mutex::new(Vec::new()), running: AtomicUsize::new(0), drainers, max: max.max(1) }
    }

    /// Adds `item`; `true`: start a drainer (one more may run).
    #[must_use]
    pub fn push(&self, item: T) -> bool {
        lock(&self.pending).push(item);
        self.enter()
    }

    /// The next group for a running drainer; `None`: the drainer must end.
    pub fn next(&self) -> Option<Vec<T>> {
        loop {
            let batch: Vec<T> = {
                let mut pending = lock(&self.pending);
                let n = pending.len().min(self.max);
                pending.drain(..n).collect()
            };
            if !batch.is_empty() {
                return Some(batch);
            }
            self.running.fetch_sub(1, Ordering::AcqRel);
            // An item pushed between the take and the decrement saw every
            // drainer running: take it over unless enough run again.
            if lock(&self.pending).is_empty() || !self.enter() {
                return None;
            }
        }
    }

    /// Counts one more drainer if fewer than `drainers` run.
    fn enter(&self) -> bool {
        if self.running.fetch_add(1, Ordering::AcqRel) < self.drainers {
            return true;
        }
        self.running.fetch_sub(1, Ordering::AcqRel);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_drainer_takes_everything_in_groups_and_the_next_push_starts_another() {
        let g = Group::new(1, 2);
        assert!(g.push(1), "the first push starts a drainer");
        assert!(!g.push(2), "one drainer at most");
        assert!(!g.push(3));
        assert_eq!(g.next(), Some(vec![1, 2]));
        assert_eq!(g.next(), Some(vec![3]));
        assert_eq!(g.next(), None, "nothing left: the drainer ends");
        assert!(g.push(4), "with no drainer running, a push starts one");
    }

    #[test]
    fn up_to_the_limit_of_drainers_start() {
        let g = Group::new(2, 10);
        assert!(g.push(1));
        assert!(g.push(2));
        assert!(!g.push(3));
        assert_eq!(g.next(), Some(vec![1, 2, 3]));
        assert_eq!(g.next(), None);
        assert_eq!(g.next(), None, "the second drainer finds nothing either");
        assert!(g.push(4));
    }
}
