//! Deliveries that share a key run one after another; deliveries of different keys run side by
//! side. A link with `one_at_a_time_per_subject` keys each message by its subject: orders are
//! published on their account's partition (`orders.placed.<partition>`), so one account's orders
//! reach billing in turn instead of racing for one balance, where every lost compare-and-swap
//! costs a read, a wait and a retry.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The keys with a delivery under way, each with the messages waiting behind it.
pub struct InTurn<T> {
    waiting: Mutex<HashMap<String, VecDeque<T>>>,
}

impl<T> Default for InTurn<T> {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
        }
    }
}

impl<T> InTurn<T> {
    /// `Some(item)` when nothing of `key` is under way: deliver it now, and call
    /// [`Self::next_after`] once it is done. `None` when it was queued behind its key's delivery.
    pub fn admit(&self, key: &str, item: T) -> Option<T> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.get_mut(key) {
            Some(queue) => {
                queue.push_back(item);
                None
            }
            None => {
                waiting.insert(key.to_string(), VecDeque::new());
                Some(item)
            }
        }
    }

    /// After a delivery of `key` ended: the next item queued behind it, oldest first, or `None`
    /// when none waits, and then `key` is free again.
    pub fn next_after(&self, key: &str) -> Option<T> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let next = waiting.get_mut(key).and_then(VecDeque::pop_front);
        if next.is_none() {
            waiting.remove(key);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_message_of_a_key_goes_at_once_and_the_next_waits_for_it() {
        let in_turn = InTurn::default();
        assert_eq!(in_turn.admit("orders.placed.a1", 1), Some(1));
        assert_eq!(in_turn.admit("orders.placed.a1", 2), None);
        assert_eq!(in_turn.admit("orders.placed.a1", 3), None);
        assert_eq!(in_turn.next_after("orders.placed.a1"), Some(2));
        assert_eq!(in_turn.next_after("orders.placed.a1"), Some(3));
        assert_eq!(in_turn.next_after("orders.placed.a1"), None);
        assert_eq!(
            in_turn.admit("orders.placed.a1", 4),
            Some(4),
            "a key whose queue ran dry is free again"
        );
    }

    #[test]
    fn other_keys_go_beside_a_busy_one() {
        let in_turn = InTurn::default();
        assert_eq!(in_turn.admit("orders.placed.a1", 1), Some(1));
        assert_eq!(in_turn.admit("orders.placed.a1", 2), None);
        assert_eq!(in_turn.admit("orders.placed.b2", 3), Some(3));
        assert_eq!(in_turn.next_after("orders.placed.b2"), None);
        assert_eq!(in_turn.next_after("orders.placed.a1"), Some(2));
    }

    #[test]
    fn concurrent_deliveries_of_one_key_never_overlap() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let in_turn = Arc::new(InTurn::default());
        let (running, most_at_once, delivered) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let (in_turn, running, most_at_once, delivered) = (
                    Arc::clone(&in_turn),
                    Arc::clone(&running),
                    Arc::clone(&most_at_once),
                    Arc::clone(&delivered),
                );
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let mut next = in_turn.admit("hot", thread * 1000 + i);
                        while next.is_some() {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most_at_once.fetch_max(now, Ordering::SeqCst);
                            std::thread::yield_now();
                            running.fetch_sub(1, Ordering::SeqCst);
                            delivered.fetch_add(1, Ordering::SeqCst);
                            next = in_turn.next_after("hot");
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(most_at_once.load(Ordering::SeqCst), 1);
        assert_eq!(
            delivered.load(Ordering::SeqCst),
            1600,
            "none lost, none twice"
        );
        assert_eq!(in_turn.admit("hot", 0), Some(0), "nothing left queued");
    }
}
