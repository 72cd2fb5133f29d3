//! billing's rules, free of any host: users and balances, deposits, and settling placed orders.
//!
//! State lives in one key-value bucket through [`CasStore`]:
//! - `account/<user>`: [`StoredAccount`], changed only by compare-and-swap, so concurrent deposits
//!   and payments (parallel component instances) never lose an update nor overdraw. It holds the
//!   balance, the newest entries of its ledger (a payment's entry is its order's outcome) and the
//!   outcomes of its newest refused orders, written together: no crash separates a movement of
//!   money from its entry, and a redelivered order finds its outcome there and is not decided
//!   again;
//! - `ledger/<user>/<number of the first entry>`: [`LEDGER_CHUNK`] consecutive entries that left
//!   the account together ([`LedgerChunk`]), created before the account stops holding them and
//!   never changed. Entries are numbered from 1 without gaps, so a statement reads its page by key;
//! - `payment/<order id>`: the [`PaymentResult`] of a settled order whose outcome left the account
//!   (with its entry's chunk, or as the oldest refusal), created the same way and kept: a replay
//!   however late finds it;
//! - `refund/<order id>/<n>`: the entry of the order's n-th refund, once it left the account (with
//!   its chunk), created the same way: an order's refunds are read by key.
//!
//! A refund ([`Billing::refund`]) is checked against the account, published as
//! [`RefundRequested`] (stream REFUNDS), then applied by compare-and-swap; billing consumes its
//! own requests and applies each again ([`Billing::apply_refund`]: a refund already applied is
//! found by its id and not applied twice), answering with the [`RefundResult`] for notify. So a
//! refund that was accepted is applied and notified even if billing stops before it answered.
//!
//! billing issues each user's API key ([`orders_domain::auth`]) and keeps the SHA-256 of the
//! current one in the account, in the same record as the balance: a deposit, a balance query and a
//! payment check the key in the same read that decides them. It also announces each key it issues
//! on the broker ([`CurrentApiKey`] on `keys.<user digest>`), where order and notify check the keys
//! they are shown: a replaced key reads nothing there either.
//!
//! How an announcement never names a replaced key once a request that issued a key answered:
//! - the new key is announced before it is stored: if billing stops in between, the newest
//!   announcement names a key nobody holds, so order and notify refuse the old one (and billing
//!   still takes it, so the user can rotate again);
//! - after storing (or failing to), billing reads the account, announces the key it holds, and
//!   reads again until the account still holds the key it last announced. Whichever request
//!   announces last, it saw the account hold that key after its announcement; a key stored after
//!   that is announced by the request that stored it, after storing.

pub mod service;

use orders_domain::api::{ApiError, IdempotencyKey, MalformedIdempotencyKey};
use orders_domain::auth::{AuthError, Caller, KeyHash, KeySecret, VerifiedKey};
use orders_domain::batch::answer_each;
use orders_domain::ports::{
    decode_record, CasStore, CasWrite, Clock, PublishError, Publisher, RecordStore, StoreError,
    Update, MAX_CONFLICTS,
};
use orders_domain::{
    Amount, InvalidValue, OrderId, PageRequest, RefundId, UserName, MAX_REFUNDS_PER_ORDER,
};
use orders_wire::proto::{
    AccountResponse, ApiKeyResponse, CreateUserRequest, CreateUserResponse, CurrentApiKey,
    DepositCashRequest, EntryKind, LedgerChunk, LedgerEntry, OrderPlaced, PaymentOutcome,
    PaymentResult, RefundRequest, RefundRequested, RefundResponse, RefundResult, ReplacedKey,
    RotateKeyRequest, Settlement, StatementEntry, StatementResponse, StoredAccount,
};
use orders_wire::subjects;

/// The highest balance an account may hold: a million times the largest deposit, far from overflow.
pub const MAX_BALANCE: u64 = 1_000_000_000_000_000;

/// How many replaced keys an account remembers. An order placed with a key that was replaced
/// before the order was settled (a rotation while the order waited in the broker, usually for
/// milliseconds) is still paid while its key is among these; past that it is refused, never paid
/// wrongly.
pub const MAX_REPLACED_KEYS: usize = 8;

/// How many of its newest refusals, and at least how many of its newest ledger entries, an account
/// holds in its own record. Enough that an account with a few movements a minute is read and
/// written as one record; small enough that rewriting it on every order stays cheap (about 70
/// bytes each). Older ones are in records of their own, each written once, when it leaves.
pub const MAX_RECENT: usize = 32;

/// How many ledger entries leave an account together, into one record: an order costs a sixteenth
/// of a write for its entry, and a statement page of 100 reads 7 records.
pub const LEDGER_CHUNK: u64 = 16;

/// billing's errors. HTTP statuses: `Invalid` 422, `Auth` 401/403/503 (see
/// [`orders_domain::auth`]), `InvalidIdempotencyKey` 400, `UserExists` 409, `UnknownUser` 404,
/// `BalanceLimit` 422, `UnknownPayment` 404, `OrderNotPaid` 409, `RefundExceedsPayment` 422,
/// `TooManyRefunds` 422, `IdempotencyConflict` 409, `Store` 503, `Broker` 503.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("user `{0}` already exists")]
    UserExists(UserName),
    #[error("user `{0}` does not exist")]
    UnknownUser(UserName),
    #[error("the balance of `{0}` would go over {MAX_BALANCE}")]
    BalanceLimit(UserName),
    #[error(transparent)]
    InvalidIdempotencyKey(#[from] MalformedIdempotencyKey),
    #[error("`{user}` paid no order `{order}` (unknown, of another user, or not settled yet)")]
    UnknownPayment { user: UserName, order: OrderId },
    #[error("order `{0}` was refused, not paid: there is nothing to refund")]
    OrderNotPaid(OrderId),
    #[error("order `{order}` has {left} left to refund")]
    RefundExceedsPayment { order: OrderId, left: u64 },
    #[error("order `{0}` has had {MAX_REFUNDS_PER_ORDER} refunds, the most one order may have")]
    TooManyRefunds(OrderId),
    #[error("this Idempotency-Key already refunded order `{0}` a different sum")]
    IdempotencyConflict(OrderId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the key could not be announced: {0}")]
    Broker(#[from] PublishError),
}

impl ApiError for BillingError {
    fn status(&self) -> u16 {
        match self {
            Self::Invalid(invalid) => invalid.status(),
            Self::Auth(auth) => auth.status(),
            Self::UserExists(_) => 409,
            Self::UnknownUser(_) => 404,
            Self::BalanceLimit(_) => 422,
            Self::InvalidIdempotencyKey(malformed) => malformed.status(),
            Self::UnknownPayment { .. } => 404,
            Self::OrderNotPaid(_) | Self::IdempotencyConflict(_) => 409,
            Self::RefundExceedsPayment { .. } | Self::TooManyRefunds(_) => 422,
            Self::Store(_) | Self::Broker(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.code(),
            Self::Auth(auth) => auth.code(),
            Self::UserExists(_) => "user_exists",
            Self::UnknownUser(_) => "unknown_user",
            Self::BalanceLimit(_) => "balance_limit",
            Self::InvalidIdempotencyKey(malformed) => malformed.code(),
            Self::UnknownPayment { .. } => "unknown_payment",
            Self::OrderNotPaid(_) => "order_not_paid",
            Self::RefundExceedsPayment { .. } => "refund_exceeds_payment",
            Self::TooManyRefunds(_) => "too_many_refunds",
            Self::IdempotencyConflict(_) => "idempotency_conflict",
            Self::Store(_) => "store_unavailable",
            Self::Broker(_) => "broker_unavailable",
        }
    }
}

fn account_key(user: &UserName) -> String {
    format!("account/{user}")
}

fn payment_key(order: &OrderId) -> String {
    format!("payment/{order}")
}

/// The record of an order's `number`-th refund, once it left the account.
fn refund_key(order: &OrderId, number: u32) -> String {
    format!("refund/{order}/{number:02}")
}

/// The record of the chunk holding entry `number`. Zero-padded, so that a listing of the bucket
/// shows an account's chunks in order.
fn ledger_key(user: &UserName, number: u64) -> String {
    let first = (number - 1) / LEDGER_CHUNK * LEDGER_CHUNK + 1;
    format!("ledger/{user}/{first:020}")
}

fn account_response(account: &StoredAccount) -> AccountResponse {
    AccountResponse {
        status: true,
        user: account.user.clone(),
        balance: account.balance,
    }
}

/// billing's use cases over a store, a clock and a broker.
pub struct Billing<'a, S: ?Sized, C: ?Sized, B: ?Sized> {
    pub store: &'a S,
    pub clock: &'a C,
    /// Where users' current keys are announced, and refund requests published.
    pub broker: &'a B,
}

impl<S: CasStore + ?Sized, C: Clock + ?Sized, B: Publisher + ?Sized> Billing<'_, S, C, B> {
    /// Opens an account with a zero balance and issues its API key (`nonce`: random bytes),
    /// announced on the broker; a second create of the same user changes nothing.
    pub fn create_user(
        &self,
        request: &CreateUserRequest,
        keys: &KeySecret,
        nonce: [u8; 16],
    ) -> Result<CreateUserResponse, BillingError> {
        let user = UserName::parse(&request.user)?;
        // An existing user's announced key stays as it is.
        if self
            .store
            .read_record::<StoredAccount>(&account_key(&user))?
            .is_some()
        {
            return Err(BillingError::UserExists(user));
        }
        let issued = keys.issue(&user, nonce);
        announce(self.broker, &user, issued.hash.as_bytes())?;
        let created =
            self.store
                .update_record(
                    &account_key(&user),
                    |current: Option<StoredAccount>| match current {
                        Some(_) => Err(BillingError::UserExists(user.clone())),
                        None => {
                            let account = StoredAccount {
                                user: user.to_string(),
                                key_sha256: issued.hash.as_bytes().to_vec(),
                                ..Default::default()
                            };
                            let response = CreateUserResponse {
                                status: true,
                                user: account.user.clone(),
                                balance: account.balance,
                                api_key: issued.key.clone(),
                            };
                            Ok(Update::Write(account, response))
                        }
                    },
                );
        self.announce_current_key(&user)?;
        created
    }

    /// Replaces a user's API key: asked with the current key, or by the admin for a user who lost
    /// theirs. The old key is refused from now on, here and, through the announcement on
    /// the broker, by order and notify (orders placed with it before now are still paid).
    pub fn rotate_key(
        &self,
        caller: &Caller,
        request: &RotateKeyRequest,
        keys: &KeySecret,
        nonce: [u8; 16],
    ) -> Result<ApiKeyResponse, BillingError> {
        let user = UserName::parse(&request.user)?;
        let presented = caller.require_user_or_admin(&user)?;
        // Only a caller allowed to rotate gets a key announced.
        let account = self
            .store
            .read_record::<StoredAccount>(&account_key(&user))?
            .map(|(account, _)| account);
        existing(account, &user, presented)?;
        let issued = keys.issue(&user, nonce);
        announce(self.broker, &user, issued.hash.as_bytes())?;
        let now = self.clock.now_ms();
        let rotated =
            self.store
                .update_record(&account_key(&user), |current: Option<StoredAccount>| {
                    let mut account = existing(current, &user, presented)?;
                    let replaced =
                        std::mem::replace(&mut account.key_sha256, issued.hash.as_bytes().to_vec());
                    account.replaced_keys.push(ReplacedKey {
                        key_sha256: replaced,
                        replaced_at_ms: now,
                    });
                    let excess = account
                        .replaced_keys
                        .len()
                        .saturating_sub(MAX_REPLACED_KEYS);
                    account.replaced_keys.drain(..excess);
                    let response = ApiKeyResponse {
                        status: true,
                        user: account.user.clone(),
                        api_key: issued.key.clone(),
                    };
                    Ok(Update::Write(account, response))
                });
        self.announce_current_key(&user)?;
        rotated
    }

    /// Announces the key `user`'s account holds, then reads the account again, until it still
    /// holds the key last announced (see the module's comment); nothing for a user without an
    /// account.
    fn announce_current_key(&self, user: &UserName) -> Result<(), BillingError> {
        let mut announced: Option<Vec<u8>> = None;
        for _ in 0..MAX_CONFLICTS {
            let held = self
                .store
                .read_record::<StoredAccount>(&account_key(user))?
                .map(|(account, _)| account.key_sha256);
            match held {
                None => return Ok(()),
                Some(held) if announced.as_ref() == Some(&held) => return Ok(()),
                Some(held) => {
                    announce(self.broker, user, &held)?;
                    announced = Some(held);
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "the key of `{user}` kept changing: {MAX_CONFLICTS} announcements"
        ))
        .into())
    }

    /// Adds to a user's balance; only with the user's current key.
    pub fn deposit(
        &self,
        caller: &Caller,
        request: &DepositCashRequest,
    ) -> Result<AccountResponse, BillingError> {
        let user = UserName::parse(&request.user)?;
        let sum = Amount::parse(request.sum)?;
        let presented = caller.require_user(&user)?;
        let now = self.clock.now_ms();
        self.store
            .update_record(&account_key(&user), |current: Option<StoredAccount>| {
                let mut account = existing(current, &user, Some(presented))?;
                let (_, leaving) = credit(&mut account, &user, Movement::Deposit(sum), now)?;
                let response = account_response(&account);
                Ok(leaving.write_after(account, response))
            })
    }

    /// Gives back money of a paid order: `request.sum`, or all that is left of it. Asked with the
    /// order's user's current key or the admin token (then `request.user` names the user). With
    /// an `idempotency_key`, every repeat of the request is the same refund, applied once;
    /// without, the refund gets an id from `nonce`. A refund that cannot be applied is refused
    /// before anything is published; one that can is published on the broker (see the module's
    /// comment), then applied.
    pub fn refund(
        &self,
        caller: &Caller,
        request: &RefundRequest,
        idempotency_key: Option<&str>,
        nonce: [u8; 16],
    ) -> Result<RefundResponse, BillingError> {
        let order = OrderId::parse(&request.order_id)?;
        let user = match (&request.user, caller) {
            (Some(user), _) => UserName::parse(user)?,
            (None, Caller::User(key)) => key.user.clone(),
            // The admin must name the user.
            (None, Caller::Admin) => return Err(InvalidValue::EmptyUserName.into()),
        };
        let sum = request.sum.map(Amount::parse).transpose()?;
        let presented = caller.require_user_or_admin(&user)?;
        let key = idempotency_key.map(IdempotencyKey::parse).transpose()?;
        let refund_id = match &key {
            Some(key) => RefundId::for_key(&user, &order, key),
            None => RefundId::from_random(nonce),
        };
        let account = self
            .store
            .read_record::<StoredAccount>(&account_key(&user))?
            .map(|(account, _)| account);
        let account = existing(account, &user, presented)?;
        let paid = self.paid_order(&account, &user, &order)?;
        let sum = match paid.decide(&order, &refund_id, sum)? {
            RefundDecision::Applied(entry) => {
                return Ok(refund_response(paid.result(&entry, &user)))
            }
            RefundDecision::Apply { amount, .. } => amount,
        };
        let requested = RefundRequested {
            refund_id: refund_id.to_string(),
            order_id: order.to_string(),
            user: user.to_string(),
            sum,
            requested_at_ms: self.clock.now_ms(),
        };
        self.broker.publish_message(
            &subjects::refund_requested(user.as_str(), &order),
            &requested,
        )?;
        Ok(refund_response(self.apply_refund(&requested)?))
    }

    /// Applies a refund that [`Self::refund`] published, unless it was applied before, and
    /// returns its result (the first one's, when it was). Refused, with nothing changed, when it
    /// no longer fits the order (another refund took what was left meanwhile).
    pub fn apply_refund(&self, requested: &RefundRequested) -> Result<RefundResult, BillingError> {
        let order = OrderId::parse(&requested.order_id)?;
        let user = UserName::parse(&requested.user)?;
        let refund_id = RefundId::parse(&requested.refund_id)?;
        let sum = Amount::parse_unsigned(requested.sum)?;
        let now = self.clock.now_ms();
        self.store
            .update_record(&account_key(&user), |current: Option<StoredAccount>| {
                let mut account = existing(current, &user, None)?;
                let paid = self.paid_order(&account, &user, &order)?;
                let number = match paid.decide(&order, &refund_id, Some(sum))? {
                    RefundDecision::Applied(entry) => {
                        return Ok(Update::Keep(paid.result(&entry, &user)))
                    }
                    RefundDecision::Apply { number, .. } => number,
                };
                let movement = Movement::Refund {
                    amount: sum,
                    order: &order,
                    refund_id: &refund_id,
                    number,
                };
                let (entry, leaving) = credit(&mut account, &user, movement, now)?;
                let mut refunded = paid;
                refunded.refunds.push(entry.clone());
                Ok(leaving.write_after(account, refunded.result(&entry, &user)))
            })
    }

    /// What `user` paid for `order` and the refunds it has had, oldest first: from the account's
    /// recent entries while it holds the payment (it then holds every later entry, the refunds
    /// too), else from the payment's and the refunds' own records and the account.
    fn paid_order(
        &self,
        account: &StoredAccount,
        user: &UserName,
        order: &OrderId,
    ) -> Result<PaidOrder, BillingError> {
        let of_this_order = |kind: EntryKind| {
            move |entry: &&LedgerEntry| entry.kind() == kind && entry.order_id == order.as_str()
        };
        let recent_refunds = account
            .recent_entries
            .iter()
            .filter(of_this_order(EntryKind::Refund));
        if let Some(payment) = account
            .recent_entries
            .iter()
            .find(of_this_order(EntryKind::Payment))
        {
            return Ok(PaidOrder {
                sum: payment.amount,
                refunds: recent_refunds.cloned().collect(),
            });
        }
        if account
            .settlements
            .iter()
            .any(|refused| refused.order_id == order.as_str())
        {
            return Err(BillingError::OrderNotPaid(order.clone()));
        }
        let unknown = || BillingError::UnknownPayment {
            user: user.clone(),
            order: order.clone(),
        };
        // Order ids are global: the record may be another user's order.
        let archived = self
            .store
            .read_record::<PaymentResult>(&payment_key(order))?
            .map(|(archived, _)| archived)
            .filter(|archived| archived.user == user.as_str())
            .ok_or_else(unknown)?;
        if archived.outcome() != PaymentOutcome::Paid {
            return Err(BillingError::OrderNotPaid(order.clone()));
        }
        let keys: Vec<String> = (1..=MAX_REFUNDS_PER_ORDER)
            .map(|number| refund_key(order, number))
            .collect();
        // Refunds leave the account oldest first: their records are the first ones, and the
        // account holds the rest (and may still hold some that have a record).
        let mut refunds: Vec<LedgerEntry> = self.store.records(&keys)?;
        for entry in recent_refunds {
            if !refunds
                .iter()
                .any(|refund| refund.refund_number == entry.refund_number)
            {
                refunds.push(entry.clone());
            }
        }
        Ok(PaidOrder {
            sum: archived.sum,
            refunds,
        })
    }

    /// A page of the account's ledger, newest entry first, for the user's current key or the
    /// admin token. `page.after` is the number of the oldest entry of the page before.
    pub fn statement(
        &self,
        caller: &Caller,
        user: &str,
        page: PageRequest,
    ) -> Result<StatementResponse, BillingError> {
        let (user, account) = self.account_to_read(caller, user)?;
        let newest = page.after.map_or(account.ledger_length, |after| {
            after.saturating_sub(1).min(account.ledger_length)
        });
        // Empty when `newest` is 0: nothing older.
        let numbers = newest.saturating_sub(u64::from(page.limit) - 1).max(1)..=newest;
        let first_recent =
            (account.ledger_length + 1).saturating_sub(account.recent_entries.len() as u64);
        let mut keys: Vec<String> = numbers
            .clone()
            .filter(|number| *number < first_recent)
            .map(|number| ledger_key(&user, number))
            .collect();
        keys.dedup();
        let mut entries = Vec::new();
        for (key, value) in keys.iter().zip(self.store.get_many(&keys)?) {
            let bytes = value.ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                why: "missing, although its account counts its entries".to_string(),
            })?;
            let chunk = decode_record::<LedgerChunk>(key, &bytes)?;
            entries.extend(
                chunk
                    .entries
                    .into_iter()
                    .filter(|entry| numbers.contains(&entry.number)),
            );
        }
        entries.extend(
            account
                .recent_entries
                .iter()
                .filter(|entry| numbers.contains(&entry.number))
                .cloned(),
        );
        entries.reverse();
        let (opening_balance, closing_balance) = match (entries.last(), entries.first()) {
            (Some(oldest), Some(newest)) => (balance_before(oldest), newest.balance_after),
            _ => (0, 0),
        };
        let oldest = *numbers.start();
        Ok(StatementResponse {
            status: true,
            user: user.to_string(),
            next_after: (oldest > 1 && !entries.is_empty()).then_some(oldest),
            entries: entries.iter().map(statement_entry).collect(),
            opening_balance,
            closing_balance,
        })
    }

    /// A user's balance, for the user's current key or the admin token.
    pub fn balance(&self, caller: &Caller, user: &str) -> Result<AccountResponse, BillingError> {
        let (_, account) = self.account_to_read(caller, user)?;
        Ok(account_response(&account))
    }

    /// The account of `user`, for the user's current key or the admin token.
    fn account_to_read(
        &self,
        caller: &Caller,
        user: &str,
    ) -> Result<(UserName, StoredAccount), BillingError> {
        let user = UserName::parse(user)?;
        let presented = caller.require_user_or_admin(&user)?;
        let account = self
            .store
            .read_record::<StoredAccount>(&account_key(&user))?
            .map(|(account, _)| account);
        let account = existing(account, &user, presented)?;
        Ok((user, account))
    }

    /// Pays a placed order if the user exists and can afford it, at most once per order id however
    /// often the order is delivered, and returns the result to publish.
    pub fn settle(&self, order: &OrderPlaced) -> Result<PaymentResult, BillingError> {
        self.settle_all(std::slice::from_ref(order))
            .pop()
            .expect("one result per order")
    }

    /// [`Self::settle`] of every order, oldest first, with one read and one compare-and-swap write
    /// for all their accounts together: each account is read once, its orders are decided one
    /// after another on it, and it is written once with their balance and outcomes together, so
    /// no crash can separate a debit from the record that it happened. An account another writer
    /// changed meanwhile (a deposit) is read and decided again; the others are done. One result
    /// per order, in the orders' order; an order that does not parse fails alone.
    pub fn settle_all(&self, orders: &[OrderPlaced]) -> Vec<Result<PaymentResult, BillingError>> {
        let now = self.clock.now_ms();
        answer_each(
            orders,
            |order| {
                ParsedOrder::parse(order)
                    .map(|parsed| (parsed, order))
                    .map_err(Err)
            },
            |parsed| self.settle_parsed(&parsed, now),
        )
    }

    /// Settles parsed orders in rounds, until no account's write lost to another writer (at most
    /// [`MAX_CONFLICTS`] rounds). One result per order, in order.
    fn settle_parsed(
        &self,
        orders: &[(ParsedOrder, &OrderPlaced)],
        now: u64,
    ) -> Vec<Result<PaymentResult, BillingError>> {
        let mut settled: Vec<Option<Result<PaymentResult, BillingError>>> =
            orders.iter().map(|_| None).collect();
        let mut unsettled = AccountOrders::of(orders);
        for conflicts in 0..MAX_CONFLICTS {
            if unsettled.is_empty() {
                break;
            }
            if conflicts > 0 {
                self.store.wait_after_conflict(conflicts);
            }
            match self.settle_round(&unsettled, orders, now) {
                Ok(outcomes) => {
                    let mut lost = Vec::new();
                    for (account, outcome) in unsettled.into_iter().zip(outcomes) {
                        match outcome {
                            RoundOutcome::Decided(results) => {
                                for (position, result) in account.positions.iter().zip(results) {
                                    settled[*position] = Some(result);
                                }
                            }
                            RoundOutcome::Lost => lost.push(account),
                        }
                    }
                    unsettled = lost;
                }
                Err(failed) => {
                    for account in unsettled.drain(..) {
                        for position in account.positions {
                            settled[position] = Some(Err(BillingError::Store(failed.clone())));
                        }
                    }
                }
            }
        }
        for account in unsettled {
            for position in account.positions {
                settled[position] =
                    Some(Err(BillingError::Store(StoreError::Unavailable(format!(
                        "the account of order {} kept changing: {MAX_CONFLICTS} conflicting writes",
                        orders[position].0.id
                    )))));
            }
        }
        settled
            .into_iter()
            .map(|result| result.expect("every order is decided or failed"))
            .collect()
    }

    /// One read of every account, their orders decided, one write of every changed account.
    fn settle_round(
        &self,
        accounts: &[AccountOrders],
        orders: &[(ParsedOrder, &OrderPlaced)],
        now: u64,
    ) -> Result<Vec<RoundOutcome>, StoreError> {
        let keys: Vec<String> = accounts
            .iter()
            .map(|account| account_key(&account.user))
            .collect();
        let current = self.store.read_many(&keys)?;
        let mut outcomes = Vec::with_capacity(accounts.len());
        let mut leaving = Leaving::default();
        let mut writes = Vec::new();
        for ((key, account_orders), found) in keys.into_iter().zip(accounts).zip(current) {
            let its_orders = account_orders.positions.iter().map(|p| &orders[*p]);
            // A record that cannot be decoded fails its own account's orders, not the batch's.
            let found = match found
                .map(|(bytes, revision)| {
                    decode_record::<StoredAccount>(&key, &bytes).map(|account| (account, revision))
                })
                .transpose()
            {
                Ok(found) => found,
                Err(corrupt) => {
                    outcomes.push(RoundOutcome::Decided(
                        its_orders
                            .map(|_| Err(BillingError::Store(corrupt.clone())))
                            .collect(),
                    ));
                    continue;
                }
            };
            let Some((mut account, revision)) = found else {
                // Accounts are created before any key of theirs exists and never deleted, so no
                // later delivery of these orders can find one: nothing to remember.
                let unknown = its_orders
                    .map(|(parsed, _)| Ok(parsed.result(PaymentOutcome::UnknownUser, None, now)));
                outcomes.push(RoundOutcome::Decided(unknown.collect()));
                continue;
            };
            let mut results = Vec::with_capacity(account_orders.positions.len());
            // Writes decided in this round, and how many of them are refusals: the newest of the
            // account's settlements.
            let (mut decided_here, mut refused_here) = (0, 0);
            let held_length = account.ledger_length;
            for (parsed, order) in its_orders {
                // Decided on a copy: an order that fails leaves the account as the orders before
                // it left it.
                let mut next = account.clone();
                let held = Held {
                    settlements: account.settlements.len() - refused_here,
                    ledger_length: held_length,
                };
                match self.decide(&mut next, held, parsed, order, now, &mut leaving) {
                    Ok(Decision::Keep(result)) => results.push(Ok(result)),
                    Ok(Decision::Write(result)) => {
                        account = next;
                        decided_here += 1;
                        if result.outcome() != PaymentOutcome::Paid {
                            refused_here += 1;
                        }
                        results.push(Ok(result));
                    }
                    Err(failed) => results.push(Err(failed)),
                }
            }
            if decided_here > 0 {
                writes.push((
                    outcomes.len(),
                    CasWrite::record(key, &account, Some(revision)),
                ));
            }
            outcomes.push(RoundOutcome::Decided(results));
        }
        // The records of what left the accounts are written before the accounts that no longer
        // hold it, so there is no moment when neither has it. First writer wins: an earlier
        // attempt of this round may have written one, the same.
        if !leaving.is_empty() {
            self.store.write_many(&leaving.creates())?;
        }
        if !writes.is_empty() {
            let (positions, writes): (Vec<usize>, Vec<CasWrite>) = writes.into_iter().unzip();
            for (position, written) in positions.into_iter().zip(self.store.write_many(&writes)?) {
                if written.is_none() {
                    outcomes[position] = RoundOutcome::Lost;
                }
            }
        }
        Ok(outcomes)
    }

    /// Decides one order on its account as it stands, changing it in place when the order's
    /// outcome is to be remembered. What leaves the account is added to `leaving`.
    fn decide(
        &self,
        account: &mut StoredAccount,
        held: Held,
        parsed: &ParsedOrder,
        order: &OrderPlaced,
        now: u64,
        leaving: &mut Leaving,
    ) -> Result<Decision, BillingError> {
        let (id, user, sum) = (&parsed.id, &parsed.user, parsed.sum);
        if let Some(earlier) = self.earlier_result(account, user, id, order, leaving)? {
            return Ok(Decision::Keep(earlier));
        }
        let refusal = if !placed_with_a_valid_key(account, order) {
            PaymentOutcome::KeyReplaced
        } else if account.balance < sum.get() {
            PaymentOutcome::InsufficientFunds
        } else {
            account.balance -= sum.get();
            let movement = Movement::Payment {
                amount: sum,
                order: id,
                placed_at_ms: order.placed_at_ms,
            };
            let entry = record_entry(account, user, held.ledger_length, movement, now, leaving)?;
            return Ok(Decision::Write(paid_result(&entry, user)));
        };
        let settlement = Settlement {
            order_id: id.to_string(),
            sum: sum.get(),
            outcome: refusal.into(),
            balance: account.balance,
            settled_at_ms: now,
            placed_at_ms: order.placed_at_ms,
        };
        let refused = payment_result(&settlement, user);
        remember(account, settlement, held.settlements, user, leaving)?;
        Ok(Decision::Write(refused))
    }

    /// The result this order already got, from the account's refusals or payments or, for an
    /// order placed early enough to have one, its own record: stored, or still to be written (it
    /// left the account earlier in this batch).
    fn earlier_result(
        &self,
        account: &StoredAccount,
        user: &UserName,
        id: &OrderId,
        order: &OrderPlaced,
        leaving: &Leaving,
    ) -> Result<Option<PaymentResult>, BillingError> {
        if let Some(settlement) = account
            .settlements
            .iter()
            .find(|s| s.order_id == id.as_str())
        {
            return Ok(Some(payment_result(settlement, user)));
        }
        if let Some(entry) = account
            .recent_entries
            .iter()
            .find(|e| e.kind() == EntryKind::Payment && e.order_id == id.as_str())
        {
            return Ok(Some(paid_result(entry, user)));
        }
        if order.placed_at_ms > account.archived_through_ms {
            return Ok(None);
        }
        let key = payment_key(id);
        if let Some((_, pending)) = leaving.payments.iter().find(|(leaving, _)| *leaving == key) {
            return Ok(Some(pending.clone()));
        }
        Ok(self
            .store
            .read_record::<PaymentResult>(&key)?
            .map(|(archived, _)| archived))
    }
}

/// How much of an account's recent refusals and entries it held when it was read: only those may
/// leave it in this round. What the round added is not written yet: a record of its own,
/// written before the account, would stay behind if the account's write then failed or lost, and
/// a redelivery would find it and call an order paid that was never debited. So a batch with more
/// new orders of one account than [`MAX_RECENT`] leaves the account holding them all for one
/// write; the next write trims it.
#[derive(Clone, Copy)]
struct Held {
    /// How many of the oldest refusals.
    settlements: usize,
    /// The ledger's length: entries up to this number.
    ledger_length: u64,
}

/// What leaves accounts into records of their own in one write of them, to be created before the
/// accounts that no longer hold it. Each key once: a write-many takes each key once, and an order
/// that failed after pushing something out left its account holding it for the next order to push
/// out again.
#[derive(Default)]
struct Leaving {
    payments: Vec<(String, PaymentResult)>,
    chunks: Vec<(String, LedgerChunk)>,
    refunds: Vec<(String, LedgerEntry)>,
}

impl Leaving {
    fn is_empty(&self) -> bool {
        self.payments.is_empty() && self.chunks.is_empty() && self.refunds.is_empty()
    }

    /// Create-only writes: every record is immutable, so one already there is this one.
    fn creates(&self) -> Vec<CasWrite> {
        fn create<M: prost::Message>(
            records: &[(String, M)],
        ) -> impl Iterator<Item = CasWrite> + '_ {
            records
                .iter()
                .map(|(key, record)| CasWrite::record(key.clone(), record, None))
        }
        create(&self.payments)
            .chain(create(&self.chunks))
            .chain(create(&self.refunds))
            .collect()
    }

    /// The update of one account that leaves this behind.
    fn write_after<T>(self, account: StoredAccount, outcome: T) -> Update<StoredAccount, T> {
        if self.is_empty() {
            Update::Write(account, outcome)
        } else {
            Update::WriteAfter(self.creates(), account, outcome)
        }
    }
}

/// Adds `record` under `key` unless it is there already.
fn add_once<T>(leaving: &mut Vec<(String, T)>, key: String, record: T) {
    if !leaving.iter().any(|(already, _)| *already == key) {
        leaving.push((key, record));
    }
}

/// Adds `settlement` (a refusal) to the account's; what exceeds [`MAX_RECENT`] of the oldest
/// `held` (those it held when read) leaves into `leaving`.
fn remember(
    account: &mut StoredAccount,
    settlement: Settlement,
    held: usize,
    user: &UserName,
    leaving: &mut Leaving,
) -> Result<(), BillingError> {
    account.settlements.push(settlement);
    let excess = account
        .settlements
        .len()
        .saturating_sub(MAX_RECENT)
        .min(held);
    let oldest: Vec<Settlement> = account.settlements.drain(..excess).collect();
    for oldest in oldest {
        let result = payment_result(&oldest, user);
        archive(
            account,
            leaving,
            &oldest.order_id,
            oldest.placed_at_ms,
            result,
        )?;
    }
    Ok(())
}

/// Puts an order's result into `leaving`, for a record of its own, and notes in the account that
/// orders placed up to then may have one.
fn archive(
    account: &mut StoredAccount,
    leaving: &mut Leaving,
    order_id: &str,
    placed_at_ms: u64,
    result: PaymentResult,
) -> Result<(), BillingError> {
    add_once(
        &mut leaving.payments,
        payment_key(&OrderId::parse(order_id)?),
        result,
    );
    account.archived_through_ms = account.archived_through_ms.max(placed_at_ms);
    Ok(())
}

/// A movement of money, as its ledger entry records it.
enum Movement<'a> {
    Deposit(Amount),
    Payment {
        amount: Amount,
        order: &'a OrderId,
        placed_at_ms: u64,
    },
    Refund {
        amount: Amount,
        order: &'a OrderId,
        refund_id: &'a RefundId,
        /// Which of the order's refunds this is, from 1.
        number: u32,
    },
}

impl Movement<'_> {
    fn amount(&self) -> Amount {
        match *self {
            Self::Deposit(amount) | Self::Payment { amount, .. } | Self::Refund { amount, .. } => {
                amount
            }
        }
    }

    /// Its entry, numbered `number`, that leaves the balance at `balance_after`.
    fn entry(&self, number: u64, balance_after: u64, at_ms: u64) -> LedgerEntry {
        let entry = LedgerEntry {
            number,
            balance_after,
            at_ms,
            ..Default::default()
        };
        match *self {
            Self::Deposit(amount) => LedgerEntry {
                kind: EntryKind::Deposit.into(),
                amount: amount.get(),
                ..entry
            },
            Self::Payment {
                amount,
                order,
                placed_at_ms,
            } => LedgerEntry {
                kind: EntryKind::Payment.into(),
                amount: amount.get(),
                order_id: order.to_string(),
                order_placed_at_ms: placed_at_ms,
                ..entry
            },
            Self::Refund {
                amount,
                order,
                refund_id,
                number,
            } => LedgerEntry {
                kind: EntryKind::Refund.into(),
                amount: amount.get(),
                order_id: order.to_string(),
                refund_id: refund_id.to_string(),
                refund_number: number,
                ..entry
            },
        }
    }
}

/// Adds `movement` (a deposit or a refund) to the account's balance, within [`MAX_BALANCE`], and
/// appends its entry; returns the entry and what left the account.
fn credit(
    account: &mut StoredAccount,
    user: &UserName,
    movement: Movement,
    now: u64,
) -> Result<(LedgerEntry, Leaving), BillingError> {
    let held_length = account.ledger_length;
    account.balance = account
        .balance
        .checked_add(movement.amount().get())
        .filter(|balance| *balance <= MAX_BALANCE)
        .ok_or_else(|| BillingError::BalanceLimit(user.clone()))?;
    let mut leaving = Leaving::default();
    let entry = record_entry(account, user, held_length, movement, now, &mut leaving)?;
    Ok((entry, leaving))
}

/// Appends `movement` to the account's ledger, its balance already changed, and returns its entry.
/// While the account holds a chunk more than [`MAX_RECENT`] entries and it held the oldest chunk's
/// when read (up to `held_length`), that chunk leaves into `leaving`, with the result of each
/// payment in it and each refund's entry.
fn record_entry(
    account: &mut StoredAccount,
    user: &UserName,
    held_length: u64,
    movement: Movement,
    now: u64,
    leaving: &mut Leaving,
) -> Result<LedgerEntry, BillingError> {
    account.ledger_length += 1;
    let entry = movement.entry(account.ledger_length, account.balance, now);
    account.recent_entries.push(entry.clone());
    let chunk = LEDGER_CHUNK as usize;
    while account.recent_entries.len() >= MAX_RECENT + chunk
        && account.recent_entries[chunk - 1].number <= held_length
    {
        let entries: Vec<LedgerEntry> = account.recent_entries.drain(..chunk).collect();
        for entry in &entries {
            match entry.kind() {
                EntryKind::Payment => {
                    let result = paid_result(entry, user);
                    archive(
                        account,
                        leaving,
                        &entry.order_id,
                        entry.order_placed_at_ms,
                        result,
                    )?;
                }
                EntryKind::Refund => {
                    let key = refund_key(&OrderId::parse(&entry.order_id)?, entry.refund_number);
                    add_once(&mut leaving.refunds, key, entry.clone());
                }
                EntryKind::Deposit | EntryKind::Unspecified => {}
            }
        }
        let key = ledger_key(user, entries[0].number);
        add_once(&mut leaving.chunks, key, LedgerChunk { entries });
    }
    Ok(entry)
}

/// The result of the order a payment entry paid.
fn paid_result(entry: &LedgerEntry, user: &UserName) -> PaymentResult {
    PaymentResult {
        order_id: entry.order_id.clone(),
        user: user.to_string(),
        sum: entry.amount,
        outcome: PaymentOutcome::Paid.into(),
        balance: Some(entry.balance_after),
        settled_at_ms: entry.at_ms,
    }
}

/// The balance before `entry` moved it.
fn balance_before(entry: &LedgerEntry) -> u64 {
    match entry.kind() {
        EntryKind::Payment => entry.balance_after + entry.amount,
        EntryKind::Deposit | EntryKind::Refund => entry.balance_after.saturating_sub(entry.amount),
        EntryKind::Unspecified => entry.balance_after,
    }
}

fn statement_entry(entry: &LedgerEntry) -> StatementEntry {
    let kind = match entry.kind() {
        EntryKind::Deposit => "deposit",
        EntryKind::Payment => "payment",
        EntryKind::Refund => "refund",
        EntryKind::Unspecified => "unspecified",
    };
    StatementEntry {
        entry: entry.number,
        kind: kind.to_string(),
        amount: entry.amount,
        order_id: (!entry.order_id.is_empty()).then(|| entry.order_id.clone()),
        balance_after: entry.balance_after,
        at_ms: entry.at_ms,
        refund_id: (!entry.refund_id.is_empty()).then(|| entry.refund_id.clone()),
    }
}

/// A paid order, as a refund finds it.
struct PaidOrder {
    /// What was paid.
    sum: u64,
    /// Its refunds' entries, oldest first, numbered from 1 without a gap.
    refunds: Vec<LedgerEntry>,
}

/// Whether a refund is to be applied.
enum RefundDecision {
    /// It was, in this entry.
    Applied(LedgerEntry),
    /// It is to be: this amount, as the order's `number`-th refund.
    Apply { amount: u64, number: u32 },
}

impl PaidOrder {
    /// Refund `refund_id` of `sum` (absent: all that is left), on the order as it stands.
    fn decide(
        &self,
        order: &OrderId,
        refund_id: &RefundId,
        sum: Option<Amount>,
    ) -> Result<RefundDecision, BillingError> {
        if let Some(applied) = self
            .refunds
            .iter()
            .find(|refund| refund.refund_id == refund_id.as_str())
        {
            if sum.is_some_and(|sum| sum.get() != applied.amount) {
                return Err(BillingError::IdempotencyConflict(order.clone()));
            }
            return Ok(RefundDecision::Applied(applied.clone()));
        }
        let refunded: u64 = self.refunds.iter().map(|refund| refund.amount).sum();
        let left = self.sum - refunded;
        let amount = sum.map_or(left, Amount::get);
        if amount > left || left == 0 {
            return Err(BillingError::RefundExceedsPayment {
                order: order.clone(),
                left,
            });
        }
        let number = u32::try_from(self.refunds.len()).unwrap_or(u32::MAX) + 1;
        if number > MAX_REFUNDS_PER_ORDER {
            return Err(BillingError::TooManyRefunds(order.clone()));
        }
        Ok(RefundDecision::Apply { amount, number })
    }

    /// How much its refunds up to the `number`-th gave back.
    fn refunded_through(&self, number: u32) -> u64 {
        self.refunds
            .iter()
            .filter(|refund| refund.refund_number <= number)
            .map(|refund| refund.amount)
            .sum()
    }

    /// The result of the refund `entry` recorded.
    fn result(&self, entry: &LedgerEntry, user: &UserName) -> RefundResult {
        RefundResult {
            refund_id: entry.refund_id.clone(),
            order_id: entry.order_id.clone(),
            user: user.to_string(),
            sum: entry.amount,
            order_sum: self.sum,
            refunded: self.refunded_through(entry.refund_number),
            balance: entry.balance_after,
            refunded_at_ms: entry.at_ms,
            entry: entry.number,
        }
    }
}

/// The answer to POST /Refund: the refund's result.
fn refund_response(result: RefundResult) -> RefundResponse {
    RefundResponse {
        status: true,
        refund_id: result.refund_id,
        order_id: result.order_id,
        user: result.user,
        sum: result.sum,
        order_sum: result.order_sum,
        refunded: result.refunded,
        balance: result.balance,
        entry: result.entry,
    }
}

/// What deciding one order does to its account.
enum Decision {
    /// The account stays as it was: the order's result was known, or it is never remembered.
    Keep(PaymentResult),
    /// The account changed: write it, then publish this result.
    Write(PaymentResult),
}

/// The orders of one account in a batch: their positions among the batch's parsed orders, in
/// the batch's order.
struct AccountOrders {
    user: UserName,
    positions: Vec<usize>,
}

impl AccountOrders {
    /// The batch's orders grouped by account, accounts in the order of their first order.
    fn of(orders: &[(ParsedOrder, &OrderPlaced)]) -> Vec<Self> {
        let mut accounts: Vec<Self> = Vec::new();
        for (position, (parsed, _)) in orders.iter().enumerate() {
            match accounts
                .iter_mut()
                .find(|account| account.user == parsed.user)
            {
                Some(account) => account.positions.push(position),
                None => accounts.push(Self {
                    user: parsed.user.clone(),
                    positions: vec![position],
                }),
            }
        }
        accounts
    }
}

/// What one round did with one account's orders.
enum RoundOutcome {
    /// One result per order of the account, in order: written with the account, or nothing to
    /// write.
    Decided(Vec<Result<PaymentResult, BillingError>>),
    /// The account's write lost to another writer: its orders are decided again on what won.
    Lost,
}

/// A placed order's fields, parsed.
struct ParsedOrder {
    id: OrderId,
    user: UserName,
    sum: Amount,
}

impl ParsedOrder {
    fn parse(order: &OrderPlaced) -> Result<Self, BillingError> {
        Ok(Self {
            id: OrderId::parse(&order.order_id)?,
            user: UserName::parse(&order.user)?,
            sum: Amount::parse_unsigned(order.sum)?,
        })
    }

    fn result(&self, outcome: PaymentOutcome, balance: Option<u64>, now: u64) -> PaymentResult {
        PaymentResult {
            order_id: self.id.to_string(),
            user: self.user.to_string(),
            sum: self.sum.get(),
            outcome: outcome.into(),
            balance,
            settled_at_ms: now,
        }
    }
}

fn payment_result(settlement: &Settlement, user: &UserName) -> PaymentResult {
    PaymentResult {
        order_id: settlement.order_id.clone(),
        user: user.to_string(),
        sum: settlement.sum,
        outcome: settlement.outcome,
        balance: Some(settlement.balance),
        settled_at_ms: settlement.settled_at_ms,
    }
}

/// The account, if it exists and the presented key (if any: `None` is the admin) is its current one.
/// Publishes `key_sha256` as `user`'s current key.
fn announce(
    broker: &(impl Publisher + ?Sized),
    user: &UserName,
    key_sha256: &[u8],
) -> Result<(), PublishError> {
    let announcement = CurrentApiKey {
        user: user.to_string(),
        key_sha256: key_sha256.to_vec(),
    };
    broker.publish_message(&subjects::current_api_key(user.as_str()), &announcement)
}

fn existing(
    account: Option<StoredAccount>,
    user: &UserName,
    presented: Option<&VerifiedKey>,
) -> Result<StoredAccount, BillingError> {
    let account = account.ok_or_else(|| BillingError::UnknownUser(user.clone()))?;
    match presented {
        Some(key) if !key.hash.matches(&account.key_sha256) => Err(AuthError::ReplacedKey.into()),
        _ => Ok(account),
    }
}

/// Whether the order's key is the account's current one, or one replaced after the order was placed.
fn placed_with_a_valid_key(account: &StoredAccount, order: &OrderPlaced) -> bool {
    let Some(key) = KeyHash::from_bytes(&order.key_sha256) else {
        return false;
    };
    key.matches(&account.key_sha256)
        || account
            .replaced_keys
            .iter()
            .any(|old| key.matches(&old.key_sha256) && old.replaced_at_ms > order.placed_at_ms)
}

#[cfg(test)]
mod tests;
