//! Property test of billing's ledger against a model: any mix of deposits, key rotations, orders
//! placed with the key current at the time, (re)deliveries of those orders in batches, refunds
//! (whole, partial, retried under one key, of orders paid, refused or never delivered), refund
//! requests redelivered, and time passing, with enough orders that the account's settlements and
//! entries overflow into records of their own.

use std::collections::HashMap;

use billing_core::{Billing, MAX_REPLACED_KEYS};
use orders_domain::api::ApiError as _;
use orders_domain::auth::{Caller, KeyHash};
use orders_domain::memory::{self, FixedClock, MemoryPublisher, MemoryStore};
use orders_domain::ports::Clock as _;
use orders_domain::{PageRequest, MAX_REFUNDS_PER_ORDER};
use orders_wire::proto::{
    CreateUserRequest, DepositCashRequest, OrderPlaced, PaymentOutcome, RefundRequest,
    RefundRequested, RotateKeyRequest,
};
use orders_wire::subjects;
use proptest::prelude::*;
use prost::Message as _;

#[derive(Debug, Clone)]
enum Event {
    Deposit(i64),
    /// The user replaces their API key.
    Rotate,
    /// The next order (of a fixed set) is placed now, with the key current now.
    Place,
    /// Orders reach billing in one batch, those that were placed; the same order may arrive many
    /// times, even twice in one batch.
    Deliver(Vec<Pick>),
    /// An hour passes.
    Wait,
    /// A refund of order `order` (placed or not): `sum`, or all that is left; under one of a few
    /// Idempotency-Keys, or none.
    Refund {
        order: usize,
        sum: Option<i64>,
        key: Option<u8>,
    },
    /// billing's consumer gets the `k`-th refund request billing published (again).
    RedeliverRefund(usize),
}

/// Which order a delivery brings.
#[derive(Debug, Clone)]
enum Pick {
    /// The `k`-th most recently placed: the broker's usual traffic.
    Recent(usize),
    /// Order `n`, however old: a redelivery, a replayed dead letter, a retried POST.
    Any(usize),
}

/// More orders than an account holds settlements (billing-core MAX_RECENT).
const ORDERS: usize = 80;

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (1i64..60).prop_map(Event::Deposit),
            1 => Just(Event::Rotate),
            6 => Just(Event::Place),
            9 => proptest::collection::vec(
                prop_oneof![
                    2 => (0usize..4).prop_map(Pick::Recent),
                    1 => (0usize..ORDERS).prop_map(Pick::Any),
                ],
                1..5,
            )
            .prop_map(Event::Deliver),
            1 => Just(Event::Wait),
            3 => (0usize..ORDERS, proptest::option::of(1i64..40), proptest::option::of(0u8..3))
                .prop_map(|(order, sum, key)| Event::Refund { order, sum, key }),
            1 => (0usize..50).prop_map(Event::RedeliverRefund),
        ],
        0..400,
    )
}

fn hash_of(caller: &Caller) -> Vec<u8> {
    match caller {
        Caller::User(key) => key.hash.as_bytes().to_vec(),
        Caller::Admin => unreachable!("a user key"),
    }
}

proptest! {
    /// Deposits always count; each order id is settled once, and paid only if the key it was
    /// placed with is still one billing honours (current, or among the last MAX_REPLACED_KEYS
    /// replaced after the order was placed) and the balance covers it at that moment;
    /// redeliveries, however late, get the same outcome and change nothing; the balance never
    /// goes below zero; a refund gives back money of a paid order only, never more than it paid,
    /// once per Idempotency-Key, and a redelivered refund request changes nothing; the statement
    /// lists every deposit, payment and refund once, newest first, and each entry's balance is the
    /// one before it moved by its amount.
    #[test]
    fn any_mix_of_deposits_rotations_and_redelivered_orders_matches_the_model_ledger(
        sums in proptest::collection::vec(1u64..80, ORDERS),
        events in events(),
    ) {
        let (store, clock) = (MemoryStore::default(), FixedClock::at(1));
        // Where billing announces each key it issues, as order and notify read it.
        let broker = MemoryPublisher::default();
        let billing = Billing { store: &store, clock: &clock, broker: &broker };
        let keys = memory::authenticator().keys;
        let created = billing
            .create_user(&CreateUserRequest { user: "Pavel".into() }, &keys, [0; 16])
            .unwrap();
        let mut pavel = memory::caller(&created.api_key);
        // The model: the balance, the key generation now, each placed order's key generation.
        let (mut balance, mut generation) = (0u64, 0usize);
        let mut placed: HashMap<usize, (OrderPlaced, usize)> = HashMap::new();
        // Each delivered order's first outcome.
        let mut settled: HashMap<usize, PaymentOutcome> = HashMap::new();
        // Every movement, oldest first: its kind, amount and the balance after it.
        let mut ledger: Vec<(String, u64, u64)> = Vec::new();
        // Each order's refunds: their amounts, and which Idempotency-Key gave which.
        let mut refunds: HashMap<usize, Vec<u64>> = HashMap::new();
        let mut keyed: HashMap<(usize, u8), u64> = HashMap::new();
        for (step, event) in events.into_iter().enumerate() {
            clock.advance(1);
            match event {
                Event::Deposit(sum) => {
                    billing.deposit(&pavel, &DepositCashRequest { user: "Pavel".into(), sum }).unwrap();
                    balance += u64::try_from(sum).unwrap();
                    ledger.push(("deposit".into(), u64::try_from(sum).unwrap(), balance));
                }
                Event::Rotate => {
                    // Distinct from every other step's and from CreateUser's all-zero nonce.
                    let mut nonce = [0xff; 16];
                    nonce[..8].copy_from_slice(&(step as u64).to_le_bytes());
                    let replaced = pavel;
                    let rotated = billing
                        .rotate_key(&replaced, &RotateKeyRequest { user: "Pavel".into() }, &keys, nonce)
                        .unwrap();
                    pavel = memory::caller(&rotated.api_key);
                    generation += 1;
                    prop_assert!(pavel.require_current(&broker).is_ok(), "the new key is announced");
                    prop_assert!(replaced.require_current(&broker).is_err(), "the old one no longer");
                }
                Event::Place if placed.len() < ORDERS => {
                    let n = placed.len();
                    let order = OrderPlaced {
                        order_id: format!("order-{n}"),
                        user: "Pavel".into(),
                        sum: sums[n],
                        placed_at_ms: clock.now_ms(),
                        key_sha256: hash_of(&pavel),
                    };
                    placed.insert(n, (order, generation));
                }
                Event::Place => {}
                Event::Wait => clock.advance(60 * 60 * 1000),
                Event::Refund { order: n, sum, key } => {
                    let request = RefundRequest { order_id: format!("order-{n}"), sum, user: None };
                    let idempotency_key = key.map(|k| format!("key-{k}"));
                    let mut nonce = [0xee; 16];
                    nonce[..8].copy_from_slice(&(step as u64).to_le_bytes());
                    let answer = billing.refund(&pavel, &request, idempotency_key.as_deref(), nonce);
                    let given = refunds.entry(n).or_default();
                    let left = sums[n] - given.iter().sum::<u64>();
                    let earlier = key.and_then(|k| keyed.get(&(n, k)).copied());
                    let expected: Result<u64, &str> = match settled.get(&n) {
                        None => Err("unknown_payment"),
                        Some(PaymentOutcome::Paid) => match (earlier, sum) {
                            (Some(first), Some(sum)) if u64::try_from(sum).unwrap() != first => {
                                Err("idempotency_conflict")
                            }
                            (Some(first), _) => Ok(first),
                            (None, sum) => {
                                let amount = sum.map_or(left, |s| u64::try_from(s).unwrap());
                                if amount > left || left == 0 {
                                    Err("refund_exceeds_payment")
                                } else if given.len() >= MAX_REFUNDS_PER_ORDER as usize {
                                    Err("too_many_refunds")
                                } else {
                                    given.push(amount);
                                    if let Some(k) = key {
                                        keyed.insert((n, k), amount);
                                    }
                                    balance += amount;
                                    ledger.push(("refund".into(), amount, balance));
                                    Ok(amount)
                                }
                            }
                        },
                        Some(_) => Err("order_not_paid"),
                    };
                    match (answer, expected) {
                        (Ok(refund), Ok(amount)) => {
                            prop_assert_eq!(refund.sum, amount);
                            prop_assert_eq!(refund.refunded <= sums[n], true);
                        }
                        (Err(error), Err(code)) => prop_assert_eq!(error.code(), code),
                        (answer, expected) => prop_assert!(false, "refund of order {}: {:?}, expected {:?}", n, answer, expected),
                    }
                }
                Event::RedeliverRefund(k) => {
                    let requests: Vec<RefundRequested> = broker
                        .published
                        .borrow()
                        .iter()
                        .filter(|(subject, _)| subject.starts_with(subjects::REFUND_REQUESTED))
                        .map(|(_, body)| RefundRequested::decode(body.as_slice()).unwrap())
                        .collect();
                    if let Some(requested) = requests.get(k) {
                        // Every request billing published was applied when it was asked.
                        let again = billing.apply_refund(requested).unwrap();
                        prop_assert_eq!(&again.refund_id, &requested.refund_id);
                        prop_assert_eq!(again.sum, requested.sum);
                    }
                }
                Event::Deliver(picks) => {
                    let delivered: Vec<usize> = picks
                        .into_iter()
                        .filter_map(|pick| match pick {
                            Pick::Recent(k) => placed.len().checked_sub(k + 1),
                            Pick::Any(n) => Some(n),
                        })
                        .filter(|n| placed.contains_key(n))
                        .collect();
                    let orders: Vec<OrderPlaced> =
                        delivered.iter().map(|n| placed[n].0.clone()).collect();
                    let results = billing.settle_all(&orders);
                    prop_assert_eq!(results.len(), delivered.len());
                    // The batch's orders are decided one after another, as the model does.
                    for (n, result) in delivered.into_iter().zip(results) {
                        let result = result.unwrap();
                        let (order, placed_with) = &placed[&n];
                        prop_assert!(KeyHash::from_bytes(&order.key_sha256).is_some());
                        match settled.get(&n) {
                            Some(&first) => prop_assert_eq!(result.outcome(), first),
                            None => {
                                let expected = if generation - placed_with > MAX_REPLACED_KEYS {
                                    PaymentOutcome::KeyReplaced
                                } else if balance >= sums[n] {
                                    balance -= sums[n];
                                    ledger.push(("payment".into(), sums[n], balance));
                                    PaymentOutcome::Paid
                                } else {
                                    PaymentOutcome::InsufficientFunds
                                };
                                prop_assert_eq!(result.outcome(), expected);
                                settled.insert(n, expected);
                            }
                        }
                    }
                }
            }
            prop_assert_eq!(billing.balance(&pavel, "Pavel").unwrap().balance, balance);
        }
        let mut statement = Vec::new();
        let mut after = None;
        loop {
            let page = billing.statement(&pavel, "Pavel", PageRequest { after, limit: 7 }).unwrap();
            statement.extend(page.entries.into_iter().map(|e| (e.kind, e.amount, e.balance_after)));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        ledger.reverse();
        prop_assert_eq!(statement, ledger);
    }
}
