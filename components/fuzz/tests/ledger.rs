//! Property test of billing's ledger against a model: any mix of deposits and (re)delivered orders.

use billing_core::Billing;
use orders_common::auth::Caller;
use orders_common::memory::{self, FixedClock, MemoryStore};
use orders_common::proto::{CreateUserRequest, DepositCashRequest, OrderPlaced, PaymentOutcome};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    Deposit(i64),
    /// Deliver order `n` (of a fixed set); the same order may be delivered many times.
    Deliver(usize),
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        prop_oneof![
            (1i64..60).prop_map(Event::Deposit),
            (0usize..12).prop_map(Event::Deliver)
        ],
        0..80,
    )
}

proptest! {
    /// Deposits always count, each order id is settled once (paid only if affordable at that
    /// moment), redeliveries change nothing, and the balance never goes below zero.
    #[test]
    fn any_mix_of_deposits_and_redelivered_orders_matches_the_model_ledger(
        sums in proptest::collection::vec(1u64..80, 12),
        events in events(),
    ) {
        let (store, clock) = (MemoryStore::default(), FixedClock::at(1));
        let billing = Billing { store: &store, clock: &clock };
        let created = billing
            .create_user(&CreateUserRequest { user: "Pavel".into() }, &memory::authenticator().keys, [1; 16])
            .unwrap();
        let pavel = memory::caller(&created.api_key);
        let Caller::User(key) = &pavel else { unreachable!("a user key") };
        let key_sha256 = key.hash.as_bytes().to_vec();
        let mut balance = 0u64;
        let mut settled: std::collections::HashMap<usize, PaymentOutcome> = Default::default();
        for event in events {
            match event {
                Event::Deposit(sum) => {
                    billing.deposit(&pavel, &DepositCashRequest { user: "Pavel".into(), sum }).unwrap();
                    balance += u64::try_from(sum).unwrap();
                }
                Event::Deliver(n) => {
                    let order = OrderPlaced { order_id: format!("order-{n}"), user: "Pavel".into(), sum: sums[n], placed_at_ms: 1, key_sha256: key_sha256.clone() };
                    let result = billing.settle(&order).unwrap();
                    let expected = *settled.entry(n).or_insert_with(|| {
                        if balance >= sums[n] {
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
