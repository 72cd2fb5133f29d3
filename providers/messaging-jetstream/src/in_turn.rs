//! Batches that share a key run one after another; batches of different keys run side by side.
//! A link with `one_at_a_time_per_subject_tokens` keys each message by the leading tokens of its
//! subject: orders are published on their account's partition (`orders.placed.<partition>.<id>`,
//! keyed `orders.placed.<partition>`), so one account's orders reach billing in turn instead of
//! racing for one balance, where every lost compare-and-swap costs a read, a wait and a retry.

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
    /// Admits a batch, oldest first: the items to deliver now together, in order, and the keys
    /// they hold, for [`Self::next_after_all`]. Several items of a key that was free all go now,
    /// one after another in the batch; an item of a key under way waits behind it.
    pub fn admit_all(&self, items: Vec<(String, T)>) -> (Vec<T>, Vec<String>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (mut now, mut held) = (Vec::new(), Vec::<String>::new());
        for (key, item) in items {
            if held.contains(&key) {
                now.push(item);
            } else if let Some(queue) = waiting.get_mut(&key) {
                queue.push_back(item);
            } else {
                waiting.insert(key.clone(), VecDeque::new());
                held.push(key);
                now.push(item);
            }
        }
        (now, held)
    }

    /// After a batch holding `keys` ended: the items queued behind them, each key's oldest first,
    /// at most `limit`, as the next batch, and the keys it holds (those that still have items
    /// queued included); keys nothing waited behind are free again.
    pub fn next_after_all(&self, keys: &[String], limit: usize) -> (Vec<T>, Vec<String>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (mut next, mut held) = (Vec::new(), Vec::new());
        for key in keys {
            match waiting.get_mut(key) {
                Some(queue) if !queue.is_empty() => {
                    let room = limit.saturating_sub(next.len()).min(queue.len());
                    next.extend(queue.drain(..room));
                    held.push(key.clone());
                }
                _ => {
                    waiting.remove(key);
                }
            }
        }
        (next, held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(keyed: &[(&str, u32)]) -> Vec<(String, u32)> {
        keyed.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_keys_first_batch_goes_at_once_and_what_comes_meanwhile_is_its_next_batch() {
        let in_turn = InTurn::default();
        let a1 = "orders.placed.a1";
        assert_eq!(in_turn.admit_all(items(&[(a1, 1)])), (vec![1], keys(&[a1])));
        assert_eq!(in_turn.admit_all(items(&[(a1, 2)])), (vec![], keys(&[])));
        assert_eq!(in_turn.admit_all(items(&[(a1, 3)])), (vec![], keys(&[])));
        assert_eq!(
            in_turn.next_after_all(&keys(&[a1]), 64),
            (vec![2, 3], keys(&[a1]))
        );
        assert_eq!(
            in_turn.next_after_all(&keys(&[a1]), 64),
            (vec![], keys(&[]))
        );
        assert_eq!(
            in_turn.admit_all(items(&[(a1, 4)])),
            (vec![4], keys(&[a1])),
            "a key whose queue ran dry is free again"
        );
    }

    #[test]
    fn a_batch_takes_every_item_of_its_free_keys_and_leaves_busy_keys_items_queued() {
        let in_turn = InTurn::default();
        in_turn.admit_all(items(&[("busy", 0)]));
        let (now, held) = in_turn.admit_all(items(&[("a", 1), ("busy", 2), ("b", 3), ("a", 4)]));
        assert_eq!(now, [1, 3, 4], "a's two items go together, in order");
        assert_eq!(held, ["a", "b"]);
        let (later, _) = in_turn.admit_all(items(&[("a", 5), ("c", 6)]));
        assert_eq!(later, [6], "a is held by the first batch");
        assert_eq!(
            in_turn.next_after_all(&keys(&["a", "b"]), 64),
            (vec![5], keys(&["a"]))
        );
        assert_eq!(
            in_turn.admit_all(items(&[("b", 7)])).0,
            [7],
            "b is free once its batch ended"
        );
        assert_eq!(in_turn.next_after_all(&keys(&["busy"]), 64).0, [2]);
    }

    #[test]
    fn a_next_batch_takes_at_most_its_limit_and_keeps_the_rest_held() {
        let in_turn = InTurn::default();
        let (_, held) = in_turn.admit_all(items(&[("a", 0), ("b", 1)]));
        in_turn.admit_all(items(&[("a", 2), ("a", 3), ("b", 4)]));
        let (next, held) = in_turn.next_after_all(&held, 1);
        assert_eq!((next, held.clone()), (vec![2], keys(&["a", "b"])));
        let (next, held) = in_turn.next_after_all(&held, 64);
        assert_eq!((next, held.clone()), (vec![3, 4], keys(&["a", "b"])));
        assert_eq!(in_turn.next_after_all(&held, 64), (vec![], keys(&[])));
        assert_eq!(
            in_turn.admit_all(items(&[("b", 5)])).0,
            [5],
            "b is free again"
        );
    }

    #[test]
    fn concurrent_batches_of_one_key_never_overlap() {
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
                        let (mut batch, mut held) =
                            in_turn.admit_all(vec![("hot".to_string(), thread * 1000 + i)]);
                        while !batch.is_empty() {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most_at_once.fetch_max(now, Ordering::SeqCst);
                            std::thread::yield_now();
                            running.fetch_sub(1, Ordering::SeqCst);
                            delivered.fetch_add(batch.len(), Ordering::SeqCst);
                            (batch, held) = in_turn.next_after_all(&held, 64);
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
        assert_eq!(
            in_turn.admit_all(vec![("hot".to_string(), 0)]).0,
            [0],
            "nothing left queued"
        );
    }
}
