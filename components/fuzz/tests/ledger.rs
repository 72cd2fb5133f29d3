//! Property test of billing's ledger against a model: any mix of deposits, key rotations, orders
//! placed with the key current at the time, and (re)deliveries of those orders.

use std::collections::HashMap;

use billing_core::{Billing, MAX_REPLACED_KEYS};
use orders_common::auth::{Caller, KeyHash};
use orders_common::memory::{self, FixedClock, MemoryStore};
use orders_common::ports::Clock as _;
use orders_common::proto::{
    CreateUserRequest, DepositCashRequest, OrderPlaced, PaymentOutcome, RotateKeyRequest,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    Deposit(i64),
    /// The user replaces their API key.
    Rotate,
    /// Order `n` (of a fixed set) is placed now, with the key current now (once; later `Place`s
    /// of the same order are ignored, as order gives every placement its own id).
    Place(usize),
    /// Order `n` reaches billing, if it was placed; the same order may arrive many times.
    Deliver(usize),
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (1i64..60).prop_map(Event::Deposit),
            3 => Just(Event::Rotate),
            3 => (0usize..12).prop_map(Event::Place),
            4 => (0usize..12).prop_map(Event::Deliver),
        ],
        0..100,
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
    /// redeliveries change nothing; the balance never goes below zero.
    #[test]
    fn any_mix_of_deposits_rotations_and_redelivered_orders_matches_the_model_ledger(
        sums in proptest::collection::vec(1u64..80, 12),
        events in events(),
    ) {
        let (store, clock) = (MemoryStore::default(), FixedClock::at(1));
        let billing = Billing { store: &store, clock: &clock };
        let keys = memory::authenticator().keys;
        let created = billing
            .create_user(&CreateUserRequest { user: "Pavel".into() }, &keys, [0; 16])
            .unwrap();
        let mut pavel = memory::caller(&created.api_key);
        // The model: the balance, the key generation now, each placed order's key generation.
        let (mut balance, mut generation) = (0u64, 0usize);
        let mut placed: HashMap<usize, (OrderPlaced, usize)> = HashMap::new();
        let mut settled: HashMap<usize, PaymentOutcome> = HashMap::new();
        for (step, event) in events.into_iter().enumerate() {
            clock.advance(1);
            match event {
                Event::Deposit(sum) => {
                    billing.deposit(&pavel, &DepositCashRequest { user: "Pavel".into(), sum }).unwrap();
                    balance += u64::try_from(sum).unwrap();
                }
                Event::Rotate => {
                    let nonce = [u8::try_from(step % 250).unwrap() + 1; 16];
                    let rotated = billing
                        .rotate_key(&pavel, &RotateKeyRequest { user: "Pavel".into() }, &keys, nonce)
                        .unwrap();
                    pavel = memory::caller(&rotated.api_key);
                    generation += 1;
                }
                Event::Place(n) => {
                    placed.entry(n).or_insert_with(|| {
                        let order = OrderPlaced {
                            order_id: format!("order-{n}"),
                            user: "Pavel".into(),
                            sum: sums[n],
                            placed_at_ms: clock.now_ms(),
                            key_sha256: hash_of(&pavel),
                        };
                        (order, generation)
                    });
                }
                Event::Deliver(n) => {
                    let Some((order, placed_with)) = placed.get(&n) else { continue };
                    prop_assert!(KeyHash::from_bytes(&order.key_sha256).is_some());
                    let result = billing.settle(order).unwrap();
                    let expected = *settled.entry(n).or_insert_with(|| {
                        if generation - placed_with > MAX_REPLACED_KEYS {
                            PaymentOutcome::KeyReplaced
                        } else if balance >= sums[n] {
                            balance -= sums[n];
                            PaymentOutcome::Paid
                        } else {
                            PaymentOutcome::InsufficientFunds
                        }
                    });
                    prop_assert_eq!(result.outcome(), expected);
                }
            }
            prop_assert_eq!(billing.balance(&pavel, "Pavel").unwrap().balance, balance);
        }
    }
}
