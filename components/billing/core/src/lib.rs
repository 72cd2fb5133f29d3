//! billing's rules, free of any host: users and balances, deposits, and settling placed orders.
//!
//! State lives in one key-value bucket through [`CasStore`]:
//! - `account/<user>`: [`StoredAccount`], changed only by compare-and-swap, so concurrent deposits
//!   and payments (parallel component instances) never lose an update nor overdraw;
//! - `payment/<order id>`: the [`PaymentResult`] of each settled order, written once; a redelivered
//!   order gets this stored result back instead of being charged again.
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
    OrderPlaced, PaymentOutcome, PaymentResult, ReplacedKey, RotateKeyRequest, StoredAccount,
};

/// The highest balance an account may hold: a million times the largest deposit, far from overflow.
pub const MAX_BALANCE: u64 = 1_000_000_000_000_000;

/// How many replaced keys an account remembers. An order placed with a key that was replaced
/// before the order was settled (a rotation while the order waited in the broker, usually for
/// milliseconds) is still paid while its key is among these; past that it is refused, never paid
/// wrongly.
pub const MAX_REPLACED_KEYS: usize = 8;

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
    pub fn settle(&self, order: &OrderPlaced) -> Result<PaymentResult, BillingError> {
        let id = OrderId::parse(&order.order_id)?;
        let user = UserName::parse(&order.user)?;
        let sum = Amount::parse_unsigned(order.sum)?;
        let payment_key = payment_key(&id);
        // No separate look for an earlier payment first: the update below reads the payment
        // record anyway (after the account, which is what makes it safe), and one read fewer per
        // order is one NATS round trip fewer (README, Performance).
        let decided =
            self.store
                .update_record(&account_key(&user), |current: Option<StoredAccount>| {
                    // Read after the account: a payment recorded by a concurrent delivery of this order
                    // before this account revision is visible now, and then the order is not charged again.
                    if let Some((settled, _)) =
                        self.store.read_record::<PaymentResult>(&payment_key)?
                    {
                        return Ok(Update::Keep(Decision::AlreadySettled(settled)));
                    }
                    let outcome = match current {
                        None => Update::Keep(Decision::Settle(PaymentOutcome::UnknownUser, None)),
                        Some(account) if account.debited_orders.contains(&order.order_id) => {
                            Update::Keep(Decision::Settle(
                                PaymentOutcome::Paid,
                                Some(account.balance),
                            ))
                        }
                        Some(account) if !placed_with_a_valid_key(&account, order) => Update::Keep(
                            Decision::Settle(PaymentOutcome::KeyReplaced, Some(account.balance)),
                        ),
                        Some(account) if account.balance < sum.get() => {
                            Update::Keep(Decision::Settle(
                                PaymentOutcome::InsufficientFunds,
                                Some(account.balance),
                            ))
                        }
                        Some(mut account) => {
                            account.balance -= sum.get();
                            account.debited_orders.push(id.to_string());
                            let balance = account.balance;
                            Update::Write(
                                account,
                                Decision::Settle(PaymentOutcome::Paid, Some(balance)),
                            )
                        }
                    };
                    Ok::<_, BillingError>(outcome)
                })?;
        let (outcome, balance) = match decided {
            Decision::AlreadySettled(settled) => return Ok(settled),
            Decision::Settle(outcome, balance) => (outcome, balance),
        };

        let result = PaymentResult {
            order_id: id.to_string(),
            user: user.to_string(),
            sum: sum.get(),
            outcome: outcome.into(),
            balance,
            settled_at_ms: self.clock.now_ms(),
        };
        // First writer wins: a concurrent delivery may have recorded this order a moment ago.
        let settled = match self.store.write_record(&payment_key, &result, None)? {
            Some(_) => result,
            None => self
                .store
                .read_record::<PaymentResult>(&payment_key)?
                .map(|(settled, _)| settled)
                .ok_or_else(|| StoreError::Unavailable(format!("`{payment_key}` vanished")))?,
        };
        if outcome == PaymentOutcome::Paid {
            self.forget_debit(&user, &id)?;
        }
        Ok(settled)
    }

    /// Once the payment record exists it guards against double charges, so the account no longer
    /// needs to remember the order.
    fn forget_debit(&self, user: &UserName, id: &OrderId) -> Result<(), BillingError> {
        self.store
            .update_record(&account_key(user), |current: Option<StoredAccount>| {
                Ok::<_, BillingError>(match current {
                    Some(mut account)
                        if account.debited_orders.iter().any(|o| o == id.as_str()) =>
                    {
                        account.debited_orders.retain(|o| o != id.as_str());
                        Update::Write(account, ())
                    }
                    _ => Update::Keep(()),
                })
            })
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

enum Decision {
    AlreadySettled(PaymentResult),
    Settle(PaymentOutcome, Option<u64>),
}

#[cfg(test)]
mod tests;
