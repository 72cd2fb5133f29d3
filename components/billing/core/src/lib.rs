//! billing's rules, free of any host: users and balances, deposits, and settling placed orders.
//!
//! State lives in one key-value bucket through [`CasStore`]:
//! - `account/<user>`: [`StoredAccount`], changed only by compare-and-swap, so concurrent deposits
//!   and payments (parallel component instances) never lose an update nor overdraw. It holds the
//!   balance and the outcomes of the account's last [`MAX_REMEMBERED_SETTLEMENTS`] orders, written
//!   together: a redelivered order finds its outcome there and is not charged again;
//! - `payment/<order id>`: the [`PaymentResult`] of a settled order that had to leave the account
//!   while the broker might still deliver it again (a busy account), written once.
//!
//! billing issues each user's API key ([`orders_common::auth`]) and keeps the SHA-256 of the
//! current one in the account, in the same record as the balance: a deposit, a balance query and a
//! payment check the key in the same read that decides them.

use orders_common::api::ApiError;
use orders_common::auth::{AuthError, Caller, KeyHash, KeySecret, VerifiedKey};
use orders_common::domain::{Amount, InvalidValue, OrderId, UserName};
use orders_common::ports::{CasStore, Clock, RecordStore, StoreError, Update};
use orders_common::proto::{
    AccountResponse, ApiKeyResponse, CreateUserRequest, CreateUserResponse, DepositCashRequest,
    OrderPlaced, PaymentOutcome, PaymentResult, ReplacedKey, RotateKeyRequest, Settlement,
    StoredAccount,
};

/// The highest balance an account may hold: a million times the largest deposit, far from overflow.
pub const MAX_BALANCE: u64 = 1_000_000_000_000_000;

/// How many replaced keys an account remembers. An order placed with a key that was replaced
/// before the order was settled (a rotation while the order waited in the broker, usually for
/// milliseconds) is still paid while its key is among these; past that it is refused, never paid
/// wrongly.
pub const MAX_REPLACED_KEYS: usize = 8;

/// How many settled orders an account remembers in its own record. Enough that an account
/// with a few orders a minute never needs more than its one record; small enough that rewriting it
/// on every order stays cheap (about 60 bytes each).
pub const MAX_REMEMBERED_SETTLEMENTS: usize = 32;

/// How long after its settlement an order may still be delivered again by the broker: a lost
/// acknowledgement is redelivered after 30 s (`ack_wait_ms`), a failed handler about 20 s of
/// backoff before its dead letter (`max_attempts` 10). A settlement younger than this that must
/// leave the account goes to its own record; an older one is forgotten.
pub const REDELIVERY_HORIZON_MS: u64 = 10 * 60 * 1000;

/// billing's errors. HTTP statuses: `Invalid` 422, `Auth` 401/403/503 (see
/// [`orders_common::auth`]), `UserExists` 409, `UnknownUser` 404, `BalanceLimit` 422, `Store` 503.
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
    #[error("the deposit would take the balance of `{0}` over {MAX_BALANCE}")]
    BalanceLimit(UserName),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError for BillingError {
    fn status(&self) -> u16 {
        match self {
            Self::Invalid(invalid) => invalid.status(),
            Self::Auth(auth) => auth.status(),
            Self::UserExists(_) => 409,
            Self::UnknownUser(_) => 404,
            Self::BalanceLimit(_) => 422,
            Self::Store(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.code(),
            Self::Auth(auth) => auth.code(),
            Self::UserExists(_) => "user_exists",
            Self::UnknownUser(_) => "unknown_user",
            Self::BalanceLimit(_) => "balance_limit",
            Self::Store(_) => "store_unavailable",
        }
    }
}

fn account_key(user: &UserName) -> String {
    format!("account/{user}")
}

fn payment_key(order: &OrderId) -> String {
    format!("payment/{order}")
}

fn account_response(account: &StoredAccount) -> AccountResponse {
    AccountResponse {
        status: true,
        user: account.user.clone(),
        balance: account.balance,
    }
}

/// billing's use cases over a store and a clock.
pub struct Billing<'a, S: ?Sized, C: ?Sized> {
    pub store: &'a S,
    pub clock: &'a C,
}

impl<S: CasStore + ?Sized, C: Clock + ?Sized> Billing<'_, S, C> {
    /// Opens an account with a zero balance and issues its API key (`nonce`: random bytes); a
    /// second create of the same user changes nothing.
    pub fn create_user(
        &self,
        request: &CreateUserRequest,
        keys: &KeySecret,
        nonce: [u8; 16],
    ) -> Result<CreateUserResponse, BillingError> {
        let user = UserName::parse(&request.user)?;
        let issued = keys.issue(&user, nonce);
        self.store.update_record(
            &account_key(&user),
            |current: Option<StoredAccount>| match current {
                Some(_) => Err(BillingError::UserExists(user.clone())),
                None => {
                    let account = StoredAccount {
                        user: user.to_string(),
                        key_sha256: issued.hash.as_bytes().to_vec(),
                        keeps_settlements: true,
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
        )
    }

    /// Replaces a user's API key: asked with the current key, or by the admin for a user who lost
    /// theirs. The old key is refused from now on (orders placed with it before now are still paid).
    pub fn rotate_key(
        &self,
        caller: &Caller,
        request: &RotateKeyRequest,
        keys: &KeySecret,
        nonce: [u8; 16],
    ) -> Result<ApiKeyResponse, BillingError> {
        let user = UserName::parse(&request.user)?;
        let presented = caller.require_user_or_admin(&user)?;
        let issued = keys.issue(&user, nonce);
        let now = self.clock.now_ms();
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
            })
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
        self.store
            .update_record(&account_key(&user), |current: Option<StoredAccount>| {
                let mut account = existing(current, &user, Some(presented))?;
                account.balance = account
                    .balance
                    .checked_add(sum.get())
                    .filter(|balance| *balance <= MAX_BALANCE)
                    .ok_or_else(|| BillingError::BalanceLimit(user.clone()))?;
                let response = account_response(&account);
                Ok(Update::Write(account, response))
            })
    }

    /// A user's balance, for the user's current key or the admin token.
    pub fn balance(&self, caller: &Caller, user: &str) -> Result<AccountResponse, BillingError> {
        let user = UserName::parse(user)?;
        let presented = caller.require_user_or_admin(&user)?;
        let account = self
            .store
            .read_record::<StoredAccount>(&account_key(&user))?
            .map(|(account, _)| account);
        Ok(account_response(&existing(account, &user, presented)?))
    }

    /// Pays a placed order if the user exists and can afford it, at most once per order id however
    /// often the order is delivered, and returns the result to publish.
    ///
    /// One read and one compare-and-swap of the account: the balance and the order's outcome are
    /// written together, so no crash can separate a debit from the record that it happened.
    pub fn settle(&self, order: &OrderPlaced) -> Result<PaymentResult, BillingError> {
        let id = OrderId::parse(&order.order_id)?;
        let user = UserName::parse(&order.user)?;
        let sum = Amount::parse_unsigned(order.sum)?;
        let now = self.clock.now_ms();
        let result = |outcome: PaymentOutcome, balance: Option<u64>| PaymentResult {
            order_id: id.to_string(),
            user: user.to_string(),
            sum: sum.get(),
            outcome: outcome.into(),
            balance,
            settled_at_ms: now,
        };
        self.store
            .update_record(&account_key(&user), |current: Option<StoredAccount>| {
                // Accounts are created before any key of theirs exists and never deleted, so no
                // later delivery of this order can find one: nothing to remember.
                let Some(mut account) = current else {
                    return Ok(Update::Keep(result(PaymentOutcome::UnknownUser, None)));
                };
                if let Some(earlier) = self.earlier_result(&account, &user, &id, order)? {
                    return Ok(Update::Keep(earlier));
                }
                let legacy_debit = account.debited_orders.iter().any(|o| o == id.as_str());
                let outcome = if legacy_debit {
                    account.debited_orders.retain(|o| o != id.as_str());
                    PaymentOutcome::Paid
                } else if order.placed_at_ms <= account.forgotten_through_ms {
                    // Uncharged and unrecorded: every later delivery is refused the same way.
                    return Ok(Update::Keep(result(
                        PaymentOutcome::Expired,
                        Some(account.balance),
                    )));
                } else if !placed_with_a_valid_key(&account, order) {
                    PaymentOutcome::KeyReplaced
                } else if account.balance < sum.get() {
                    PaymentOutcome::InsufficientFunds
                } else {
                    account.balance -= sum.get();
                    PaymentOutcome::Paid
                };
                let settlement = Settlement {
                    order_id: id.to_string(),
                    sum: sum.get(),
                    outcome: outcome.into(),
                    balance: account.balance,
                    settled_at_ms: now,
                    placed_at_ms: order.placed_at_ms,
                };
                let settled = payment_result(&settlement, &user);
                self.remember(&mut account, settlement, &user, now)?;
                Ok::<_, BillingError>(Update::Write(account, settled))
            })
    }

    /// The result this order already got, from the account's settlements or, for an order placed
    /// early enough to have one, its own record.
    fn earlier_result(
        &self,
        account: &StoredAccount,
        user: &UserName,
        id: &OrderId,
        order: &OrderPlaced,
    ) -> Result<Option<PaymentResult>, BillingError> {
        if let Some(settlement) = account
            .settlements
            .iter()
            .find(|s| s.order_id == id.as_str())
        {
            return Ok(Some(payment_result(settlement, user)));
        }
        let archived_through = if account.keeps_settlements {
            account.archived_through_ms
        } else {
            u64::MAX
        };
        if order.placed_at_ms > archived_through {
            return Ok(None);
        }
        Ok(self
            .store
            .read_record::<PaymentResult>(&payment_key(id))?
            .map(|(archived, _)| archived))
    }

    /// Adds `settlement` to the account's, which stay at [`MAX_REMEMBERED_SETTLEMENTS`]: the
    /// oldest leaves, into a record of its own if a delivery of its order may still come, else
    /// forgotten. The record is written before the account that no longer holds the settlement,
    /// so there is no moment when neither has it.
    fn remember(
        &self,
        account: &mut StoredAccount,
        settlement: Settlement,
        user: &UserName,
        now: u64,
    ) -> Result<(), BillingError> {
        account.settlements.push(settlement);
        if !account.keeps_settlements {
            // Orders placed until shortly after this moment may have been settled by a billing
            // that recorded them under payment/<id> only (clocks of hosts differ a little).
            account.archived_through_ms = now + REDELIVERY_HORIZON_MS;
            account.keeps_settlements = true;
        }
        while account.settlements.len() > MAX_REMEMBERED_SETTLEMENTS {
            let oldest = account.settlements.remove(0);
            if now.saturating_sub(oldest.settled_at_ms) < REDELIVERY_HORIZON_MS {
                // First writer wins: an earlier attempt of this update may have written it.
                let record = payment_result(&oldest, user);
                let key = payment_key(&OrderId::parse(&oldest.order_id)?);
                self.store.write_record(&key, &record, None)?;
                account.archived_through_ms = account.archived_through_ms.max(oldest.placed_at_ms);
            } else {
                account.forgotten_through_ms =
                    account.forgotten_through_ms.max(oldest.placed_at_ms);
            }
        }
        Ok(())
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
