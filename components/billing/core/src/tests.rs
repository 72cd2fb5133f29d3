use std::collections::HashMap;

use orders_domain::auth::{AuthError, Caller, CurrentKeys, KeyHash};
use orders_domain::memory::{self, FixedClock, MemoryPublisher, MemoryStore, ADMIN_TOKEN};
use orders_domain::ports::{CasStore, CasWrite, RecordStore, Revision, Versioned};

use super::*;

struct World {
    store: MemoryStore,
    clock: FixedClock,
    /// Where billing announces the keys it issues.
    broker: MemoryPublisher,
    /// Each user's current API key, as CreateUser and RotateKey answered.
    keys: std::cell::RefCell<HashMap<String, String>>,
    nonces: std::cell::Cell<u8>,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::default(),
            clock: FixedClock::at(1_700_000_000_000),
            broker: MemoryPublisher::default(),
            keys: Default::default(),
            nonces: Default::default(),
        }
    }

    fn billing(&self) -> Billing<'_, MemoryStore, FixedClock, MemoryPublisher> {
        Billing {
            store: &self.store,
            clock: &self.clock,
            broker: &self.broker,
        }
    }

    fn nonce(&self) -> [u8; 16] {
        self.nonces.set(self.nonces.get() + 1);
        [self.nonces.get(); 16]
    }

    fn create(&self, user: &str) -> Result<CreateUserResponse, BillingError> {
        let created = self.billing().create_user(
            &CreateUserRequest { user: user.into() },
            &memory::authenticator().keys,
            self.nonce(),
        )?;
        self.keys
            .borrow_mut()
            .insert(created.user.clone(), created.api_key.clone());
        Ok(created)
    }

    fn with_user(user: &str, balance: i64) -> Self {
        let world = Self::new();
        world.create(user).unwrap();
        if balance > 0 {
            world.deposit(user, balance).unwrap();
        }
        world
    }

    fn key(&self, user: &str) -> String {
        self.keys.borrow()[user].clone()
    }

    /// The caller presenting `user`'s current key.
    fn as_user(&self, user: &str) -> Caller {
        memory::caller(&self.key(user))
    }

    fn deposit(&self, user: &str, sum: i64) -> Result<AccountResponse, BillingError> {
        self.deposit_as(&self.as_user(user.trim()), user, sum)
    }

    fn deposit_as(
        &self,
        caller: &Caller,
        user: &str,
        sum: i64,
    ) -> Result<AccountResponse, BillingError> {
        self.billing().deposit(
            caller,
            &DepositCashRequest {
                user: user.into(),
                sum,
            },
        )
    }

    fn rotate(&self, caller: &Caller, user: &str) -> Result<ApiKeyResponse, BillingError> {
        let rotated = self.billing().rotate_key(
            caller,
            &RotateKeyRequest { user: user.into() },
            &memory::authenticator().keys,
            self.nonce(),
        )?;
        self.keys
            .borrow_mut()
            .insert(rotated.user.clone(), rotated.api_key.clone());
        Ok(rotated)
    }

    /// Whether order and notify would take `caller`'s key: the newest announcement names it.
    fn announced_current(&self, caller: &Caller) -> bool {
        caller.require_current(&self.broker).is_ok()
    }

    fn announcements(&self) -> usize {
        self.broker.published.borrow().len()
    }

    fn balance(&self, user: &str) -> u64 {
        self.billing()
            .balance(&memory::caller(ADMIN_TOKEN), user)
            .unwrap()
            .balance
    }

    /// An order as order would publish it: placed now, with `key`.
    fn placed(&self, id: &str, user: &str, sum: u64, key: &str) -> OrderPlaced {
        let Caller::User(verified) = memory::caller(key) else {
            unreachable!("a user key");
        };
        OrderPlaced {
            order_id: id.into(),
            user: user.into(),
            sum,
            placed_at_ms: self.clock.now_ms(),
            key_sha256: verified.hash.as_bytes().to_vec(),
        }
    }

    /// Settles an order placed now with the user's current key.
    fn order(&self, id: &str, user: &str, sum: u64) -> PaymentResult {
        let key = self.keys.borrow().get(user).cloned();
        let key = key.unwrap_or_else(|| {
            memory::authenticator()
                .keys
                .issue(&UserName::parse(user).unwrap(), [0; 16])
                .key
        });
        self.billing()
            .settle(&self.placed(id, user, sum, &key))
            .unwrap()
    }
}

fn outcome(result: &PaymentResult) -> PaymentOutcome {
    PaymentOutcome::try_from(result.outcome).unwrap()
}

#[test]
fn a_new_user_starts_with_a_zero_balance_and_gets_a_key_whose_hash_alone_is_stored() {
    let world = World::new();
    let created = world.create(" Pavel ").unwrap();
    assert_eq!(
        (created.status, created.user.as_str(), created.balance),
        (true, "Pavel", 0)
    );
    assert_eq!(world.balance("Pavel"), 0);
    let (account, _) = world
        .store
        .read_record::<StoredAccount>("account/Pavel")
        .unwrap()
        .unwrap();
    let Caller::User(key) = world.as_user("Pavel") else {
        unreachable!()
    };
    assert!(key.hash.matches(&account.key_sha256));
    let stored = String::from_utf8_lossy(&world.store.read("account/Pavel").unwrap().unwrap().0)
        .into_owned();
    assert!(
        !stored.contains(&created.api_key[4..20]),
        "the key itself is not stored"
    );
}

#[test]
fn creating_an_existing_user_again_is_a_conflict_and_keeps_the_balance_and_key() {
    let world = World::with_user("Pavel", 100);
    let key = world.key("Pavel");
    let error = world.create("Pavel").unwrap_err();
    assert!(matches!(error, BillingError::UserExists(_)));
    assert_eq!(error.status(), 409);
    assert_eq!(world.balance("Pavel"), 100);
    world.keys.borrow_mut().insert("Pavel".into(), key);
    assert!(
        world.deposit("Pavel", 1).is_ok(),
        "the first key still works"
    );
}

#[test]
fn a_deposit_adds_to_the_balance() {
    let world = World::with_user("Pavel", 100);
    let response = world.deposit("Pavel", 50).unwrap();
    assert_eq!(response.balance, 150);
    assert_eq!(world.balance("Pavel"), 150);
}

#[test]
fn a_deposit_with_another_users_key_or_the_admin_token_is_forbidden_and_changes_nothing() {
    let world = World::with_user("Pavel", 100);
    world.create("Anna").unwrap();
    for caller in [world.as_user("Anna"), memory::caller(ADMIN_TOKEN)] {
        let error = world.deposit_as(&caller, "Pavel", 50).unwrap_err();
        assert_eq!((error.status(), error.code()), (403, "forbidden"));
    }
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn a_deposit_for_an_unknown_user_is_not_found_and_creates_nobody() {
    let world = World::new();
    let ghost_key = memory::authenticator()
        .keys
        .issue(&UserName::parse("Nobody").unwrap(), [9; 16]);
    let error = world
        .deposit_as(&memory::caller(&ghost_key.key), "Nobody", 5)
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (404, "unknown_user"));
    assert!(world.store.keys().is_empty());
}

#[test]
fn invalid_requests_store_nothing() {
    let world = World::with_user("Pavel", 100);
    let before = world.store.read("account/Pavel").unwrap();
    for (user, sum) in [
        ("Pavel", 0),
        ("Pavel", -5),
        ("Pavel", 1_000_000_001),
        ("  ", 10),
    ] {
        let error = world
            .deposit_as(&world.as_user("Pavel"), user, sum)
            .unwrap_err();
        assert_eq!(error.status(), 422, "{user} {sum}");
    }
    assert!(world.create("").is_err());
    assert_eq!(world.store.keys(), ["account/Pavel"]);
    assert_eq!(world.store.read("account/Pavel").unwrap(), before);
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

    let error = world.deposit("Rich", 6).unwrap_err();
    assert_eq!((error.status(), error.code()), (422, "balance_limit"));
    assert_eq!(world.balance("Rich"), MAX_BALANCE - 5);
    world.deposit("Rich", 5).unwrap();
    assert_eq!(world.balance("Rich"), MAX_BALANCE);
}

#[test]
fn the_balance_is_shown_to_the_user_and_the_admin_only() {
    let world = World::with_user("Pavel", 100);
    world.create("Anna").unwrap();
    let shown = world.billing().balance(&world.as_user("Pavel"), "Pavel");
    assert_eq!(shown.unwrap().balance, 100);
    let refused = world
        .billing()
        .balance(&world.as_user("Anna"), "Pavel")
        .unwrap_err();
    assert_eq!(refused.status(), 403);
}

#[test]
fn a_rotated_key_replaces_the_old_one_and_keeps_the_account() {
    let world = World::with_user("Pavel", 100);
    let (old_key, old) = (world.key("Pavel"), world.as_user("Pavel"));
    let rotated = world.rotate(&old, "Pavel").unwrap();
    assert_ne!(rotated.api_key, old_key);
    for refused in [
        world.deposit_as(&old, "Pavel", 1).unwrap_err(),
        world.billing().balance(&old, "Pavel").unwrap_err(),
        world.rotate(&old, "Pavel").unwrap_err(),
    ] {
        assert!(matches!(
            refused,
            BillingError::Auth(AuthError::ReplacedKey)
        ));
        assert_eq!((refused.status(), refused.code()), (401, "unauthorized"));
    }
    assert_eq!(world.deposit("Pavel", 5).unwrap().balance, 105);
}

#[test]
fn every_issued_key_is_announced_and_only_the_newest_is_current_for_order_and_notify() {
    let world = World::with_user("Pavel", 0);
    let first = world.as_user("Pavel");
    assert!(world.announced_current(&first));
    world.rotate(&first, "Pavel").unwrap();
    let second = world.as_user("Pavel");
    world.rotate(&memory::caller(ADMIN_TOKEN), "Pavel").unwrap();
    let third = world.as_user("Pavel");
    assert!(!world.announced_current(&first));
    assert!(!world.announced_current(&second));
    assert!(world.announced_current(&third));
    let user = UserName::parse("Pavel").unwrap();
    let announced = world.broker.current_key(&user).unwrap().unwrap();
    let Caller::User(key) = third else {
        unreachable!()
    };
    assert_eq!(announced, key.hash);
}

#[test]
fn a_refused_create_or_rotation_announces_no_key() {
    let world = World::with_user("Pavel", 0);
    let old = world.as_user("Pavel");
    world.rotate(&old, "Pavel").unwrap();
    let announced = world.announcements();
    world.create("Pavel").unwrap_err();
    world.rotate(&old, "Pavel").unwrap_err();
    world.create("Anna").unwrap();
    world.rotate(&world.as_user("Anna"), "Pavel").unwrap_err();
    let anna = world.announcements() - announced;
    assert_eq!(anna, 2, "Anna's key, before and after it was stored");
    assert!(world.announced_current(&world.as_user("Pavel")));
}

#[test]
fn a_key_that_cannot_be_announced_is_not_issued() {
    let world = World::with_user("Pavel", 100);
    let current = world.as_user("Pavel");
    world.broker.broken.set(true);
    let refused = world.create("Anna").unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (503, "broker_unavailable")
    );
    assert!(world.store.keys().iter().all(|key| !key.contains("Anna")));
    world.rotate(&current, "Pavel").unwrap_err();
    world.broker.broken.set(false);
    assert!(world.announced_current(&current));
    assert_eq!(world.deposit_as(&current, "Pavel", 1).unwrap().balance, 101);
}

#[test]
fn a_rotation_announces_its_key_after_any_older_announcement_that_came_late() {
    let world = World::with_user("Pavel", 0);
    let replaced = world.as_user("Pavel");
    world.rotate(&replaced, "Pavel").unwrap();
    // A concurrent request's announcement of the replaced key, arriving after the rotation's.
    let Caller::User(stale) = &replaced else {
        unreachable!()
    };
    announce(
        &world.broker,
        &UserName::parse("Pavel").unwrap(),
        stale.hash.as_bytes(),
    )
    .unwrap();
    assert!(world.announced_current(&replaced));
    world.rotate(&world.as_user("Pavel"), "Pavel").unwrap();
    assert!(!world.announced_current(&replaced));
    assert!(world.announced_current(&world.as_user("Pavel")));
}

#[test]
fn the_admin_can_give_a_user_who_lost_their_key_a_new_one() {
    let world = World::with_user("Pavel", 100);
    world.rotate(&memory::caller(ADMIN_TOKEN), "Pavel").unwrap();
    assert_eq!(world.deposit("Pavel", 1).unwrap().balance, 101);
    world.create("Anna").unwrap();
    let refused = world.rotate(&world.as_user("Anna"), "Pavel").unwrap_err();
    assert_eq!(refused.status(), 403);
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
fn an_order_placed_with_a_key_replaced_before_it_was_placed_is_refused_and_charges_nothing() {
    let world = World::with_user("Pavel", 100);
    let old = world.key("Pavel");
    world.rotate(&world.as_user("Pavel"), "Pavel").unwrap();
    world.clock.advance(1);
    let order = world.placed("o-1", "Pavel", 10, &old);
    let result = world.billing().settle(&order).unwrap();
    assert_eq!(
        (outcome(&result), result.balance),
        (PaymentOutcome::KeyReplaced, Some(100))
    );
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn an_order_placed_before_its_key_was_replaced_is_still_paid() {
    let world = World::with_user("Pavel", 100);
    let placed = world.placed("o-1", "Pavel", 10, &world.key("Pavel"));
    world.clock.advance(1);
    world.rotate(&world.as_user("Pavel"), "Pavel").unwrap();
    let result = world.billing().settle(&placed).unwrap();
    assert_eq!(outcome(&result), PaymentOutcome::Paid);
    assert_eq!(world.balance("Pavel"), 90);
}

#[test]
fn an_account_remembers_only_its_last_replaced_keys() {
    let world = World::with_user("Pavel", 100);
    let placed = world.placed("o-1", "Pavel", 10, &world.key("Pavel"));
    for _ in 0..=MAX_REPLACED_KEYS {
        world.clock.advance(1);
        world.rotate(&world.as_user("Pavel"), "Pavel").unwrap();
    }
    let (account, _) = world
        .store
        .read_record::<StoredAccount>("account/Pavel")
        .unwrap()
        .unwrap();
    assert_eq!(account.replaced_keys.len(), MAX_REPLACED_KEYS);
    let result = world.billing().settle(&placed).unwrap();
    assert_eq!(
        outcome(&result),
        PaymentOutcome::KeyReplaced,
        "too old to tell: refused, never paid wrongly"
    );
}

#[test]
fn an_order_with_another_users_key_or_no_key_is_refused() {
    let world = World::with_user("Pavel", 100);
    world.create("Anna").unwrap();
    let mut forged = world.placed("o-1", "Pavel", 10, &world.key("Anna"));
    assert_eq!(
        outcome(&world.billing().settle(&forged).unwrap()),
        PaymentOutcome::KeyReplaced
    );
    forged.order_id = "o-2".into();
    forged.key_sha256.clear();
    assert_eq!(
        outcome(&world.billing().settle(&forged).unwrap()),
        PaymentOutcome::KeyReplaced
    );
    assert_eq!(world.balance("Pavel"), 100);
    assert!(KeyHash::from_bytes(&forged.key_sha256).is_none());
}

#[test]
fn a_redelivered_order_is_charged_once_and_gets_the_same_result() {
    let world = World::with_user("Pavel", 100);
    let first = world.order("o-1", "Pavel", 10);
    world.clock.advance(5_000);
    let again = world
        .billing()
        .settle(&world.placed("o-1", "Pavel", 10, &world.key("Pavel")));
    assert_eq!(first, again.unwrap());
    assert_eq!(world.balance("Pavel"), 90);
}

#[test]
fn an_order_is_settled_with_one_read_and_one_write_of_the_account_alone() {
    let world = World::with_user("Pavel", 100);
    world.store.take_operations();
    world.order("o-1", "Pavel", 10);
    let operations = world.store.take_operations();
    // The balance query of World::with_user is not counted: it comes after take_operations.
    assert_eq!((operations.reads, operations.writes), (1, 1));
    assert_eq!(world.store.keys(), ["account/Pavel"]);
}

#[test]
fn a_batch_of_orders_of_several_accounts_is_settled_with_one_read_and_one_write_in_all() {
    let world = World::with_user("Pavel", 100);
    world.create("Olga").unwrap();
    world.deposit("Olga", 15).unwrap();
    let (pavel, olga) = (world.key("Pavel"), world.key("Olga"));
    let batch = [
        world.placed("p-1", "Pavel", 30, &pavel),
        world.placed("o-1", "Olga", 10, &olga),
        world.placed("p-2", "Pavel", 60, &pavel),
        world.placed("x-1", "Nobody", 5, &pavel),
        world.placed("o-2", "Olga", 10, &olga),
        world.placed("p-3", "Pavel", 20, &pavel),
    ];
    world.store.take_operations();
    let outcomes: Vec<PaymentOutcome> = world
        .billing()
        .settle_all(&batch)
        .iter()
        .map(|result| outcome(result.as_ref().unwrap()))
        .collect();
    let operations = world.store.take_operations();
    assert_eq!((operations.reads, operations.writes), (1, 1));
    use PaymentOutcome::*;
    assert_eq!(
        outcomes,
        [
            Paid,
            Paid,
            Paid,
            UnknownUser,
            InsufficientFunds,
            InsufficientFunds
        ],
        "each account's orders are decided one after another, in the batch's order"
    );
    assert_eq!((world.balance("Pavel"), world.balance("Olga")), (10, 5));
}

#[test]
fn an_order_delivered_twice_in_one_batch_is_charged_once() {
    let world = World::with_user("Pavel", 100);
    let order = world.placed("o-1", "Pavel", 10, &world.key("Pavel"));
    let results = world.billing().settle_all(&[order.clone(), order]);
    let [first, second] = [&results[0], &results[1]].map(|r| r.as_ref().unwrap().clone());
    assert_eq!(first, second);
    assert_eq!(world.balance("Pavel"), 90);
}

#[test]
fn a_malformed_order_in_a_batch_fails_alone() {
    let world = World::with_user("Pavel", 100);
    let key = world.key("Pavel");
    let results = world.billing().settle_all(&[
        world.placed("o-1", "Pavel", 10, &key),
        world.placed("", "Pavel", 10, &key),
        world.placed("o-3", "Pavel", 10, &key),
    ]);
    assert!(matches!(results[1], Err(BillingError::Invalid(_))));
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(world.balance("Pavel"), 80);
}

#[test]
fn a_refused_order_is_remembered_too_so_a_later_deposit_cannot_turn_it_into_a_payment() {
    let world = World::with_user("Pavel", 5);
    let refused = world.order("o-1", "Pavel", 10);
    world.deposit("Pavel", 100).unwrap();
    let again = world
        .billing()
        .settle(&world.placed("o-1", "Pavel", 10, &world.key("Pavel")))
        .unwrap();
    assert_eq!(outcome(&again), PaymentOutcome::InsufficientFunds);
    assert_eq!(again, refused);
    assert_eq!(world.balance("Pavel"), 105);
}

/// Places and settles `count` orders of 1 named `<prefix>-<n>`, one millisecond apart.
fn orders(world: &World, prefix: &str, count: usize) -> Vec<OrderPlaced> {
    (0..count)
        .map(|n| {
            world.clock.advance(1);
            let order = world.placed(&format!("{prefix}-{n}"), "Pavel", 1, &world.key("Pavel"));
            world.billing().settle(&order).unwrap();
            order
        })
        .collect()
}

fn account(world: &World, user: &str) -> StoredAccount {
    world
        .store
        .read_record(&format!("account/{user}"))
        .unwrap()
        .unwrap()
        .0
}

#[test]
fn a_busy_accounts_oldest_entries_move_as_a_chunk_with_their_payments_and_still_stop_a_second_charge(
) {
    let world = World::with_user("Pavel", 1_000);
    let placed = orders(&world, "o", 50);
    let held = account(&world, "Pavel");
    assert_eq!(held.ledger_length, 51, "the deposit and every payment");
    assert_eq!(
        held.recent_entries.len(),
        35,
        "entries 1 to 16 left together when the account held 48"
    );
    assert!(
        held.settlements.is_empty(),
        "a payment's outcome is its entry"
    );
    let mut expected = vec![
        "account/Pavel".to_string(),
        "ledger/Pavel/00000000000000000001".to_string(),
    ];
    expected.extend((0..15).map(|n| format!("payment/o-{n}")));
    expected.sort();
    assert_eq!(world.store.keys(), expected);
    let balance = world.balance("Pavel");
    world.clock.advance(5_000);
    for order in &placed {
        let again = world.billing().settle(order).unwrap();
        assert_eq!(
            (outcome(&again), again.order_id.as_str()),
            (PaymentOutcome::Paid, order.order_id.as_str())
        );
    }
    assert_eq!(world.balance("Pavel"), balance);
    assert_eq!(balance, 1_000 - placed.len() as u64);
    assert_eq!(account(&world, "Pavel").ledger_length, held.ledger_length);
}

#[test]
fn entries_of_one_batch_leave_the_account_only_after_a_write_of_it_held_them() {
    let world = World::with_user("Pavel", 1_000);
    let batch: Vec<OrderPlaced> = (0..60)
        .map(|n| world.placed(&format!("b-{n}"), "Pavel", 1, &world.key("Pavel")))
        .collect();
    assert!(world.billing().settle_all(&batch).iter().all(|r| r.is_ok()));
    assert_eq!(account(&world, "Pavel").recent_entries.len(), 61);
    assert_eq!(world.store.keys(), ["account/Pavel"], "nothing left it yet");

    orders(&world, "next", 1);
    assert_eq!(account(&world, "Pavel").recent_entries.len(), 46);
    let keys = world.store.keys();
    assert!(keys.contains(&"ledger/Pavel/00000000000000000001".to_string()));
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("payment/b-")).count(),
        15
    );
}

#[test]
fn a_busy_accounts_oldest_refusals_move_to_their_own_records_and_stay_refused() {
    let world = World::with_user("Pavel", 0);
    let refused: Vec<OrderPlaced> = (0..MAX_RECENT + 2)
        .map(|n| {
            world.clock.advance(1);
            let order = world.placed(&format!("r-{n}"), "Pavel", 5, &world.key("Pavel"));
            world.billing().settle(&order).unwrap();
            order
        })
        .collect();
    assert_eq!(account(&world, "Pavel").settlements.len(), MAX_RECENT);
    assert_eq!(
        world.store.keys(),
        ["account/Pavel", "payment/r-0", "payment/r-1"]
    );
    world.deposit("Pavel", 1_000).unwrap();
    for order in &refused {
        let again = world.billing().settle(order).unwrap();
        assert_eq!(outcome(&again), PaymentOutcome::InsufficientFunds);
    }
    assert_eq!(world.balance("Pavel"), 1_000);
}

#[test]
fn an_order_replayed_a_day_after_hundreds_of_newer_ones_gets_its_first_result_and_no_charge() {
    let world = World::with_user("Pavel", 5);
    let long_ago = [
        world.placed("paid-long-ago", "Pavel", 3, &world.key("Pavel")),
        world.placed("refused-long-ago", "Pavel", 10, &world.key("Pavel")),
    ];
    let first = world.billing().settle_all(&long_ago);
    world.deposit("Pavel", 1_000).unwrap();
    orders(&world, "newer", 10 * MAX_RECENT);
    world.clock.advance(24 * 60 * 60 * 1000);
    let balance = world.balance("Pavel");

    let again = world.billing().settle_all(&long_ago);
    let outcomes = |results: &[Result<PaymentResult, BillingError>]| -> Vec<PaymentResult> {
        results
            .iter()
            .map(|r| r.as_ref().unwrap().clone())
            .collect()
    };
    assert_eq!(outcomes(&again), outcomes(&first));
    assert_eq!(
        outcomes(&again).iter().map(outcome).collect::<Vec<_>>(),
        [PaymentOutcome::Paid, PaymentOutcome::InsufficientFunds]
    );
    assert_eq!(world.balance("Pavel"), balance, "nothing charged");
}

/// A page of Pavel's statement, as his key reads it.
fn statement(world: &World, after: Option<u64>, limit: u32) -> StatementResponse {
    world
        .billing()
        .statement(
            &world.as_user("Pavel"),
            "Pavel",
            PageRequest { after, limit },
        )
        .unwrap()
}

fn movements(page: &StatementResponse) -> Vec<(u64, &str, u64, u64)> {
    page.entries
        .iter()
        .map(|e| (e.entry, e.kind.as_str(), e.amount, e.balance_after))
        .collect()
}

#[test]
fn a_statement_shows_every_deposit_and_payment_newest_first_and_no_refusal() {
    let world = World::with_user("Pavel", 100);
    let paid = world.order("o-1", "Pavel", 30);
    world.order("o-2", "Pavel", 500);
    world.deposit("Pavel", 7).unwrap();
    let page = statement(&world, None, 100);
    assert_eq!(
        movements(&page),
        [
            (3, "deposit", 7, 77),
            (2, "payment", 30, 70),
            (1, "deposit", 100, 100)
        ]
    );
    assert_eq!(
        page.entries[1].order_id.as_deref(),
        Some(paid.order_id.as_str())
    );
    assert_eq!(page.entries[0].order_id, None);
    assert_eq!((page.opening_balance, page.closing_balance), (0, 77));
    assert_eq!(page.next_after, None);
}

#[test]
fn a_statement_pages_back_through_entries_that_left_the_account_with_each_pages_balances() {
    let world = World::with_user("Pavel", 1_000);
    orders(&world, "o", 2 * MAX_RECENT);
    let length = 1 + 2 * MAX_RECENT as u64;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = statement(&world, after, 7);
        let first = page.entries.first().unwrap();
        let last = page.entries.last().unwrap();
        assert_eq!(page.closing_balance, first.balance_after);
        let before_last = match last.kind.as_str() {
            "deposit" => last.balance_after - last.amount,
            _ => last.balance_after + last.amount,
        };
        assert_eq!(page.opening_balance, before_last);
        seen.extend(page.entries.iter().map(|e| e.entry));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (1..=length).rev().collect::<Vec<_>>());
    assert_eq!(
        statement(&world, None, 1).closing_balance,
        world.balance("Pavel")
    );
}

#[test]
fn an_empty_statement_has_no_entries_and_a_zero_balance_on_both_ends() {
    let world = World::with_user("Pavel", 0);
    let page = statement(&world, None, 100);
    assert!(page.entries.is_empty());
    assert_eq!(
        (page.opening_balance, page.closing_balance, page.next_after),
        (0, 0, None)
    );
}

#[test]
fn a_statement_is_the_users_own_or_the_admins() {
    let world = World::with_user("Pavel", 10);
    world.create("Maria").unwrap();
    let page = PageRequest {
        after: None,
        limit: 10,
    };
    let theirs = world
        .billing()
        .statement(&world.as_user("Maria"), "Pavel", page);
    assert_eq!(theirs.unwrap_err().status(), 403);
    let admins = world
        .billing()
        .statement(&memory::caller(ADMIN_TOKEN), "Pavel", page);
    assert_eq!(admins.unwrap().entries.len(), 1);
    let nobodys = world
        .billing()
        .statement(&memory::caller(ADMIN_TOKEN), "Nobody", page);
    assert_eq!(nobodys.unwrap_err().status(), 404);
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
    let before = world.store.keys();
    let valid = world.placed("o-1", "Pavel", 10, &world.key("Pavel"));
    for order in [
        OrderPlaced {
            order_id: "bad id".into(),
            ..valid.clone()
        },
        OrderPlaced {
            user: "".into(),
            ..valid.clone()
        },
        OrderPlaced {
            sum: 0,
            ..valid.clone()
        },
    ] {
        assert!(matches!(
            world.billing().settle(&order),
            Err(BillingError::Invalid(_))
        ));
    }
    assert_eq!(world.store.keys(), before);
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn a_balance_query_for_an_unknown_user_is_not_found() {
    let world = World::new();
    let error = world
        .billing()
        .balance(&memory::caller(ADMIN_TOKEN), "Nobody")
        .unwrap_err();
    assert_eq!(error.status(), 404);
}

/// What another party does to the store just before billing's first write of accounts.
enum Interference {
    /// Another writer (another billing instance, a deposit) takes this much from every account
    /// billing is about to write, and gets there first.
    TakesFirst(u64),
    /// The write fails (JetStream timed out), after the records written before it went through.
    FailsTheWrite,
}

struct Interfering<'a> {
    inner: &'a MemoryStore,
    interference: Interference,
    done: std::cell::Cell<bool>,
}

impl<'a> Interfering<'a> {
    fn new(inner: &'a MemoryStore, interference: Interference) -> Self {
        Self {
            inner,
            interference,
            done: Default::default(),
        }
    }
}

impl CasStore for Interfering<'_> {
    fn read_many(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.inner.read_many(keys)
    }
    fn write_many(&self, writes: &[CasWrite]) -> Result<Vec<Option<Revision>>, StoreError> {
        let accounts = writes.iter().any(|w| w.key.starts_with("account/"));
        if accounts && !self.done.replace(true) {
            match self.interference {
                Interference::TakesFirst(sum) => {
                    for write in writes {
                        let (mut account, revision) = self
                            .inner
                            .read_record::<StoredAccount>(&write.key)?
                            .unwrap();
                        account.balance -= sum;
                        self.inner
                            .write_record(&write.key, &account, Some(revision))?
                            .unwrap();
                    }
                }
                Interference::FailsTheWrite => {
                    return Err(StoreError::Unavailable("timed out".into()))
                }
            }
        }
        self.inner.write_many(writes)
    }
    fn scan(
        &self,
        scan: orders_domain::ports::Scan<'_>,
    ) -> Result<orders_domain::ports::ScanPage, StoreError> {
        self.inner.scan(scan)
    }
    fn wait_after_conflict(&self, conflicts: u32) {
        self.inner.wait_after_conflict(conflicts)
    }
}

#[test]
fn a_batch_whose_account_write_failed_leaves_nothing_a_redelivery_could_take_for_a_payment() {
    // A batch with more new orders of one account than the account remembers; its write of the
    // account fails. Redelivered in other batches, every order must be charged: no record of
    // its own may tell of a payment the account never got.
    let world = World::with_user("Pavel", 100);
    let key = world.key("Pavel");
    let first: Vec<OrderPlaced> = (0..40)
        .map(|n| world.placed(&format!("o-{n}"), "Pavel", 1, &key))
        .collect();
    let failing = Interfering::new(&world.store, Interference::FailsTheWrite);
    let billing = Billing {
        store: &failing,
        clock: &world.clock,
        broker: &world.broker,
    };
    assert!(billing.settle_all(&first).iter().all(Result::is_err));
    world.clock.advance(1);
    let later: Vec<OrderPlaced> = (0..10)
        .map(|n| world.placed(&format!("p-{n}"), "Pavel", 1, &key))
        .collect();
    let redelivered: Vec<OrderPlaced> = first[8..].iter().chain(&later).cloned().collect();
    let early = &first[..8];
    for batch in [&redelivered[..], early] {
        for result in world.billing().settle_all(batch) {
            assert_eq!(outcome(&result.unwrap()), PaymentOutcome::Paid);
        }
    }
    assert_eq!(world.balance("Pavel"), 50, "50 orders of 1, each charged");
}

#[test]
fn a_batch_whose_account_changed_before_its_write_is_decided_again_on_the_new_balance() {
    let world = World::with_user("Pavel", 100);
    let key = world.key("Pavel");
    let batch = [
        world.placed("o-1", "Pavel", 50, &key),
        world.placed("o-2", "Pavel", 40, &key),
    ];
    let store = Interfering::new(&world.store, Interference::TakesFirst(30));
    let billing = Billing {
        store: &store,
        clock: &world.clock,
        broker: &world.broker,
    };
    let outcomes: Vec<PaymentOutcome> = billing
        .settle_all(&batch)
        .iter()
        .map(|result| outcome(result.as_ref().unwrap()))
        .collect();
    // Decided on 100, both would be paid; decided again on the 70 that won, the second is not.
    assert_eq!(
        outcomes,
        [PaymentOutcome::Paid, PaymentOutcome::InsufficientFunds]
    );
    assert_eq!(world.balance("Pavel"), 20);
}

impl World {
    /// Asks for a refund of `order` as `caller`, under `key` if given.
    fn refund_as(
        &self,
        caller: &Caller,
        order: &str,
        sum: Option<i64>,
        key: Option<&str>,
    ) -> Result<RefundResponse, BillingError> {
        let request = RefundRequest {
            order_id: order.into(),
            sum,
            user: None,
        };
        self.billing().refund(caller, &request, key, self.nonce())
    }

    fn refund(
        &self,
        user: &str,
        order: &str,
        sum: Option<i64>,
        key: Option<&str>,
    ) -> Result<RefundResponse, BillingError> {
        self.refund_as(&self.as_user(user), order, sum, key)
    }

    /// The refund requests billing published, oldest first.
    fn refund_requests(&self) -> Vec<RefundRequested> {
        self.broker
            .published
            .borrow()
            .iter()
            .filter(|(subject, _)| subject.starts_with(subjects::REFUND_REQUESTED))
            .map(|(_, body)| prost::Message::decode(body.as_slice()).unwrap())
            .collect()
    }
}

#[test]
fn a_paid_order_is_refunded_in_full_once_however_often_the_refund_is_asked() {
    let world = World::with_user("Pavel", 100);
    world.order("o-1", "Pavel", 30);
    let first = world.refund("Pavel", "o-1", None, Some("k-1")).unwrap();
    assert_eq!(
        (first.sum, first.order_sum, first.refunded, first.balance),
        (30, 30, 30, 100)
    );
    let again = world.refund("Pavel", "o-1", None, Some("k-1")).unwrap();
    assert_eq!(again, first, "the retry is answered as the first");
    assert_eq!(world.balance("Pavel"), 100);
    assert_eq!(
        world.refund_requests().len(),
        1,
        "a refund already applied is not published again"
    );
    let more = world.refund("Pavel", "o-1", None, Some("k-2")).unwrap_err();
    assert_eq!(
        (more.status(), more.code()),
        (422, "refund_exceeds_payment")
    );
}

#[test]
fn partial_refunds_give_back_up_to_the_paid_sum_and_no_more() {
    let world = World::with_user("Pavel", 100);
    world.order("o-1", "Pavel", 30);
    assert_eq!(
        world
            .refund("Pavel", "o-1", Some(10), None)
            .unwrap()
            .refunded,
        10
    );
    let over = world.refund("Pavel", "o-1", Some(21), None).unwrap_err();
    assert_eq!(
        (over.status(), over.code()),
        (422, "refund_exceeds_payment")
    );
    assert!(over.to_string().contains("20 left"), "{over}");
    let rest = world.refund("Pavel", "o-1", None, None).unwrap();
    assert_eq!((rest.sum, rest.refunded, rest.balance), (20, 30, 100));
    assert_eq!(world.balance("Pavel"), 100);
    let page = statement(&world, None, 10);
    assert_eq!(
        movements(&page),
        [
            (4, "refund", 20, 100),
            (3, "refund", 10, 80),
            (2, "payment", 30, 70),
            (1, "deposit", 100, 100)
        ]
    );
    assert_eq!(
        page.entries[0].refund_id.as_deref(),
        Some(rest.refund_id.as_str())
    );
}

#[test]
fn the_same_key_with_a_different_sum_is_a_conflict_and_changes_nothing() {
    let world = World::with_user("Pavel", 100);
    world.order("o-1", "Pavel", 30);
    world.refund("Pavel", "o-1", Some(5), Some("k")).unwrap();
    let error = world
        .refund("Pavel", "o-1", Some(6), Some("k"))
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (409, "idempotency_conflict")
    );
    assert_eq!(world.balance("Pavel"), 75);
}

#[test]
fn refusing_a_refund_changes_and_publishes_nothing() {
    let world = World::with_user("Pavel", 20);
    world.create("Anna").unwrap();
    world.order("paid", "Pavel", 10);
    world.order("refused", "Pavel", 1_000);
    let before = world.store.keys();
    let announcements = world.announcements();
    let admin = memory::caller(ADMIN_TOKEN);
    let cases: Vec<(Result<RefundResponse, BillingError>, u16, &str)> = vec![
        (
            world.refund("Pavel", "nobody-placed-it", None, None),
            404,
            "unknown_payment",
        ),
        (
            world.refund("Pavel", "refused", None, None),
            409,
            "order_not_paid",
        ),
        (
            world.refund("Anna", "paid", None, None),
            404,
            "unknown_payment",
        ),
        (
            world.refund("Pavel", "paid", Some(0), None),
            422,
            "invalid_sum",
        ),
        (
            world.refund("Pavel", "paid", Some(11), None),
            422,
            "refund_exceeds_payment",
        ),
        (
            world.refund("Pavel", "bad id", None, None),
            422,
            "invalid_order_id",
        ),
        (
            world.refund("Pavel", "paid", None, Some("")),
            400,
            "invalid_idempotency_key",
        ),
        (
            world.refund_as(&admin, "paid", None, None),
            422,
            "invalid_user",
        ),
        (
            world.billing().refund(
                &world.as_user("Anna"),
                &RefundRequest {
                    order_id: "paid".into(),
                    sum: None,
                    user: Some("Pavel".into()),
                },
                None,
                [1; 16],
            ),
            403,
            "forbidden",
        ),
    ];
    for (refused, status, code) in cases {
        let error = refused.unwrap_err();
        assert_eq!((error.status(), error.code()), (status, code), "{error}");
    }
    assert_eq!(world.store.keys(), before);
    assert_eq!(world.announcements(), announcements, "nothing published");
    assert_eq!(world.balance("Pavel"), 10);
}

#[test]
fn the_admin_refunds_a_named_users_order_and_a_replaced_key_refunds_nothing() {
    let world = World::with_user("Pavel", 100);
    world.order("o-1", "Pavel", 30);
    let old = world.as_user("Pavel");
    world.rotate(&old, "Pavel").unwrap();
    let replaced = world.refund_as(&old, "o-1", None, None).unwrap_err();
    assert!(matches!(
        replaced,
        BillingError::Auth(AuthError::ReplacedKey)
    ));
    let request = RefundRequest {
        order_id: "o-1".into(),
        sum: Some(5),
        user: Some("Pavel".into()),
    };
    let by_admin = world
        .billing()
        .refund(&memory::caller(ADMIN_TOKEN), &request, None, [3; 16])
        .unwrap();
    assert_eq!((by_admin.user.as_str(), by_admin.balance), ("Pavel", 75));
}

#[test]
fn a_published_refund_is_applied_once_whether_billing_or_its_consumer_gets_there_first() {
    let world = World::with_user("Pavel", 100);
    world.order("o-1", "Pavel", 30);
    let asked = world.refund("Pavel", "o-1", Some(12), Some("k")).unwrap();
    let [requested] = world.refund_requests().try_into().unwrap();
    assert_eq!(
        (requested.refund_id.as_str(), requested.sum),
        (asked.refund_id.as_str(), 12)
    );
    // The consumer gets the request after billing applied it, as often as it is redelivered.
    for _ in 0..3 {
        let result = world.billing().apply_refund(&requested).unwrap();
        assert_eq!((result.sum, result.refunded, result.balance), (12, 12, 82));
        assert_eq!(result.entry, asked.entry);
    }
    assert_eq!(world.balance("Pavel"), 82);
    // A request billing published but stopped before applying: the consumer applies it.
    let lost = RefundRequested {
        refund_id: RefundId::from_random([7; 16]).to_string(),
        sum: 18,
        ..requested.clone()
    };
    let applied = world.billing().apply_refund(&lost).unwrap();
    assert_eq!((applied.refunded, applied.balance), (30, 100));
    // One that no longer fits is refused and changes nothing.
    let late = RefundRequested {
        refund_id: RefundId::from_random([8; 16]).to_string(),
        sum: 1,
        ..requested
    };
    let error = world.billing().apply_refund(&late).unwrap_err();
    assert_eq!(error.code(), "refund_exceeds_payment");
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn a_redelivered_order_after_its_refund_is_not_charged_again() {
    let world = World::with_user("Pavel", 100);
    let placed = world.placed("o-1", "Pavel", 30, &world.key("Pavel"));
    world.billing().settle(&placed).unwrap();
    world.refund("Pavel", "o-1", None, None).unwrap();
    let again = world.billing().settle(&placed).unwrap();
    assert_eq!(outcome(&again), PaymentOutcome::Paid);
    assert_eq!(world.balance("Pavel"), 100);
}

#[test]
fn an_order_refunded_long_after_its_payment_left_the_account_finds_it_and_its_refunds() {
    let world = World::with_user("Pavel", 10_000);
    world.order("early", "Pavel", 100);
    world.refund("Pavel", "early", Some(10), None).unwrap();
    orders(&world, "later", 80);
    assert!(world.store.read("payment/early").unwrap().is_some());
    assert!(world.store.read("refund/early/01").unwrap().is_some());
    let refunded = world.refund("Pavel", "early", Some(40), None).unwrap();
    assert_eq!((refunded.refunded, refunded.order_sum), (50, 100));
    orders(&world, "even-later", 80);
    assert!(world.store.read("refund/early/02").unwrap().is_some());
    let rest = world.refund("Pavel", "early", None, None).unwrap();
    assert_eq!((rest.sum, rest.refunded), (50, 100));
    let error = world.refund("Pavel", "early", Some(1), None).unwrap_err();
    assert_eq!(error.code(), "refund_exceeds_payment");
}

#[test]
fn an_order_has_at_most_sixteen_refunds() {
    let world = World::with_user("Pavel", 100);
    world.order("o-1", "Pavel", 100);
    for _ in 0..MAX_REFUNDS_PER_ORDER {
        world.refund("Pavel", "o-1", Some(1), None).unwrap();
    }
    let error = world.refund("Pavel", "o-1", Some(1), None).unwrap_err();
    assert_eq!((error.status(), error.code()), (422, "too_many_refunds"));
    assert_eq!(world.balance("Pavel"), 16);
}
