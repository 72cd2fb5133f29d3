use orders_common::memory::{FixedClock, MemoryStore};
use orders_common::ports::{CasStore, RecordStore};

use super::*;

struct World {
    store: MemoryStore,
    clock: FixedClock,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::default(),
            clock: FixedClock::at(1_700_000_000_000),
        }
    }

    fn billing(&self) -> Billing<'_, MemoryStore, FixedClock> {
        Billing {
            store: &self.store,
            clock: &self.clock,
        }
    }

    fn with_user(user: &str, balance: i64) -> Self {
        let world = Self::new();
        world
            .billing()
            .create_user(&CreateUserRequest { user: user.into() })
            .unwrap();
        if balance > 0 {
            world
                .billing()
                .deposit(&DepositCashRequest {
                    user: user.into(),
                    sum: balance,
                })
                .unwrap();
        }
        world
    }

    fn balance(&self, user: &str) -> u64 {
        self.billing().balance(user).unwrap().balance
    }

    fn order(&self, id: &str, user: &str, sum: u64) -> PaymentResult {
        let order = OrderPlaced {
            order_id: id.into(),
            user: user.into(),
            sum,
            placed_at_ms: 1,
        };
        self.billing().settle(&order).unwrap()
    }
}

fn outcome(result: &PaymentResult) -> PaymentOutcome {
    PaymentOutcome::try_from(result.outcome).unwrap()
}

#[test]
fn a_new_user_starts_with_a_zero_balance() {
    let world = World::new();
    let created = world
        .billing()
        .create_user(&CreateUserRequest {
            user: " Pavel ".into(),
        })
        .unwrap();
    assert_eq!(
        (created.status, created.user.as_str(), created.balance),
        (true, "Pavel", 0)
    );
    assert_eq!(world.balance("Pavel"), 0);
}

#[test]
fn creating_an_existing_user_again_is_a_conflict_and_keeps_the_balance() {
    let world = World::with_user("Pavel", 100);
    let error = world
        .billing()
        .create_user(&CreateUserRequest {
            user: "Pavel".into(),
        })
        .unwrap_err();
    assert!(matches!(error, BillingError::UserExists(_)));
    assert_eq!(error.status(), 409);
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn a_deposit_adds_to_the_balance() {
    let world = World::with_user("Pavel", 100);
    let response = world
        .billing()
        .deposit(&DepositCashRequest {
            user: "Pavel".into(),
            sum: 50,
        })
        .unwrap();
    assert_eq!(response.balance, 150);
    assert_eq!(world.balance("Pavel"), 150);
}

#[test]
fn a_deposit_for_an_unknown_user_is_not_found_and_creates_nobody() {
    let world = World::new();
    let error = world
        .billing()
        .deposit(&DepositCashRequest {
            user: "Nobody".into(),
            sum: 5,
        })
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (404, "unknown_user"));
    assert!(world.store.keys().unwrap().is_empty());
}

#[test]
fn invalid_requests_store_nothing() {
    let world = World::with_user("Pavel", 100);
    let before = world.store.keys().unwrap();
    for (user, sum) in [
        ("Pavel", 0),
        ("Pavel", -5),
        ("Pavel", 1_000_000_001),
        ("  ", 10),
    ] {
        let error = world
            .billing()
            .deposit(&DepositCashRequest {
                user: user.into(),
                sum,
            })
            .unwrap_err();
        assert_eq!(error.status(), 422, "{user} {sum}");
    }
    assert!(world
        .billing()
        .create_user(&CreateUserRequest { user: "".into() })
        .is_err());
    assert_eq!(world.store.keys().unwrap(), before);
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn a_deposit_past_the_balance_limit_is_refused() {
    let world = World::with_user("Rich", 0);
    let (mut account, revision) = world
        .store
        .read_record::<StoredAccount>("account/Rich")
        .unwrap()
        .unwrap();
    account.balance = MAX_BALANCE - 5;
    world
        .store
        .write_record("account/Rich", &account, Some(revision))
        .unwrap()
        .unwrap();

    let error = world
        .billing()
        .deposit(&DepositCashRequest {
            user: "Rich".into(),
            sum: 6,
        })
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (422, "balance_limit"));
    assert_eq!(world.balance("Rich"), MAX_BALANCE - 5);
    world
        .billing()
        .deposit(&DepositCashRequest {
            user: "Rich".into(),
            sum: 5,
        })
        .unwrap();
    assert_eq!(world.balance("Rich"), MAX_BALANCE);
}

#[test]
fn an_affordable_order_is_paid_and_debited() {
    let world = World::with_user("Pavel", 100);
    let result = world.order("o-1", "Pavel", 10);
    assert_eq!(outcome(&result), PaymentOutcome::Paid);
    assert_eq!(result.balance, Some(90));
    assert_eq!(world.balance("Pavel"), 90);
}

#[test]
fn an_unaffordable_order_is_refused_and_the_balance_is_kept() {
    let world = World::with_user("Pavel", 100);
    let result = world.order("o-1", "Pavel", 1000);
    assert_eq!(outcome(&result), PaymentOutcome::InsufficientFunds);
    assert_eq!(result.balance, Some(100));
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn an_order_for_an_unknown_user_is_refused_without_a_balance() {
    let world = World::new();
    let result = world.order("o-1", "Ghost", 10);
    assert_eq!(outcome(&result), PaymentOutcome::UnknownUser);
    assert_eq!(result.balance, None);
}

#[test]
fn a_redelivered_order_is_charged_once_and_gets_the_same_result() {
    let world = World::with_user("Pavel", 100);
    let first = world.order("o-1", "Pavel", 10);
    world.clock.advance(5_000);
    let again = world.order("o-1", "Pavel", 10);
    assert_eq!(first, again);
    assert_eq!(world.balance("Pavel"), 90);
}

#[test]
fn an_order_debited_before_a_crash_is_not_charged_again_on_redelivery() {
    let world = World::with_user("Pavel", 100);
    // The state a crash between the debit and the payment record leaves behind.
    let (mut account, revision) = world
        .store
        .read_record::<StoredAccount>("account/Pavel")
        .unwrap()
        .unwrap();
    account.balance = 90;
    account.debited_orders.push("o-1".into());
    world
        .store
        .write_record("account/Pavel", &account, Some(revision))
        .unwrap()
        .unwrap();

    let result = world.order("o-1", "Pavel", 10);
    assert_eq!(
        (outcome(&result), result.balance),
        (PaymentOutcome::Paid, Some(90))
    );
    assert_eq!(world.balance("Pavel"), 90);
    let (account, _) = world
        .store
        .read_record::<StoredAccount>("account/Pavel")
        .unwrap()
        .unwrap();
    assert!(
        account.debited_orders.is_empty(),
        "the debit is forgotten once the payment is recorded"
    );
}

#[test]
fn a_balance_of_100_pays_exactly_ten_orders_of_10() {
    let world = World::with_user("Pavel", 100);
    let paid = (0..50)
        .map(|i| world.order(&format!("o-{i}"), "Pavel", 10))
        .filter(|r| outcome(r) == PaymentOutcome::Paid)
        .count();
    assert_eq!(paid, 10);
    assert_eq!(world.balance("Pavel"), 0);
}

#[test]
fn a_malformed_order_is_refused_and_changes_nothing() {
    let world = World::with_user("Pavel", 100);
    let before = world.store.keys().unwrap();
    for order in [
        OrderPlaced {
            order_id: "bad id".into(),
            user: "Pavel".into(),
            sum: 10,
            placed_at_ms: 0,
        },
        OrderPlaced {
            order_id: "o-1".into(),
            user: "".into(),
            sum: 10,
            placed_at_ms: 0,
        },
        OrderPlaced {
            order_id: "o-1".into(),
            user: "Pavel".into(),
            sum: 0,
            placed_at_ms: 0,
        },
    ] {
        assert!(matches!(
            world.billing().settle(&order),
            Err(BillingError::Invalid(_))
        ));
    }
    assert_eq!(world.store.keys().unwrap(), before);
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn a_balance_query_for_an_unknown_user_is_not_found() {
    let world = World::new();
    assert_eq!(world.billing().balance("Nobody").unwrap_err().status(), 404);
}
