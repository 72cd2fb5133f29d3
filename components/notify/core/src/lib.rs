//! notify's rules, free of any host: turn each payment result into a notification, "send" it once
//! however often the result is delivered, and list what was sent.
//!
//! State: key `notification/<order id>` holds the [`Notification`], created once (compare-and-swap
//! against "absent"), so a redelivered result neither sends nor stores a second notification.

use orders_common::api::ApiError;
use orders_common::domain::{Amount, InvalidValue, OrderId, UserName};
use orders_common::ports::{CasStore, Clock, RecordStore, StoreError};
use orders_common::proto::{ListResponse, Notification, PaymentOutcome, PaymentResult};

/// notify's errors. HTTP statuses: `Invalid` 422, `Store` 503. `UnknownOutcome` comes only from
/// the broker (a result we cannot word) and never reaches HTTP.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("payment result for order `{0}` has no known outcome")]
    UnknownOutcome(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError for NotifyError {
    fn status(&self) -> u16 {
        match self {
            Self::Invalid(invalid) => invalid.status(),
            Self::UnknownOutcome(_) => 422,
            Self::Store(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.code(),
            Self::UnknownOutcome(_) => "unknown_outcome",
            Self::Store(_) => "store_unavailable",
        }
    }
}

const KEY_PREFIX: &str = "notification/";

/// What handling a payment result did.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// First delivery: this notification was just sent and stored.
    Sent(Notification),
    /// A redelivery: the notification was sent before; nothing was sent again.
    AlreadySent(Notification),
}

pub struct Notify<'a, S: ?Sized, C: ?Sized> {
    pub store: &'a S,
    pub clock: &'a C,
}

impl<S: CasStore + ?Sized, C: Clock + ?Sized> Notify<'_, S, C> {
    pub fn deliver(&self, result: &PaymentResult) -> Result<Delivery, NotifyError> {
        let id = OrderId::parse(&result.order_id)?;
        let user = UserName::parse(&result.user)?;
        let sum = Amount::parse_unsigned(result.sum)?;
        let (paid, reason) = match PaymentOutcome::try_from(result.outcome) {
            Ok(PaymentOutcome::Paid) => (true, "paid"),
            Ok(PaymentOutcome::InsufficientFunds) => (false, "insufficient_funds"),
            Ok(PaymentOutcome::UnknownUser) => (false, "unknown_user"),
            Ok(PaymentOutcome::Unspecified) | Err(_) => {
                return Err(NotifyError::UnknownOutcome(id.to_string()))
            }
        };
        let notification = Notification {
            order_id: id.to_string(),
            user: user.to_string(),
            sum: sum.get(),
            paid,
            reason: reason.to_string(),
            balance: result.balance,
            message: message(&user, &id, sum, reason, result.balance),
            sent_at_ms: self.clock.now_ms(),
        };
        let key = format!("{KEY_PREFIX}{id}");
        if self
            .store
            .write_record(&key, &notification, None)?
            .is_some()
        {
            return Ok(Delivery::Sent(notification));
        }
        let (earlier, _) = self
            .store
            .read_record::<Notification>(&key)?
            .ok_or_else(|| StoreError::Unavailable(format!("`{key}` vanished")))?;
        Ok(Delivery::AlreadySent(earlier))
    }

    /// Every notification, or one user's, oldest first.
    pub fn list(&self, user: Option<&str>) -> Result<ListResponse, NotifyError> {
        let user = user.map(UserName::parse).transpose()?;
        let mut notifications: Vec<Notification> = self.store.records_with_prefix(KEY_PREFIX)?;
        if let Some(user) = &user {
            notifications.retain(|n| n.user == user.as_str());
        }
        notifications.sort_by(|a, b| (a.sent_at_ms, &a.order_id).cmp(&(b.sent_at_ms, &b.order_id)));
        Ok(ListResponse {
            status: true,
            notifications,
        })
    }
}

fn message(
    user: &UserName,
    id: &OrderId,
    sum: Amount,
    reason: &str,
    balance: Option<u64>,
) -> String {
    let sum = sum.get();
    match (reason, balance) {
        ("paid", Some(balance)) => {
            format!("{user}, your order {id} for {sum} is paid. Balance: {balance}.")
        }
        ("insufficient_funds", Some(balance)) => format!(
            "{user}, your order {id} for {sum} could not be paid: insufficient funds (balance {balance})."
        ),
        _ => format!("{user}, your order {id} for {sum} could not be paid: there is no account for you."),
    }
}

#[cfg(test)]
mod tests {
    use orders_common::memory::{FixedClock, MemoryStore};

    use super::*;

    fn result(
        id: &str,
        user: &str,
        outcome: PaymentOutcome,
        balance: Option<u64>,
    ) -> PaymentResult {
        PaymentResult {
            order_id: id.into(),
            user: user.into(),
            sum: 10,
            outcome: outcome.into(),
            balance,
            settled_at_ms: 0,
        }
    }

    struct World {
        store: MemoryStore,
        clock: FixedClock,
    }

    impl World {
        fn new() -> Self {
            Self {
                store: MemoryStore::default(),
                clock: FixedClock::at(1_000),
            }
        }

        fn notify(&self) -> Notify<'_, MemoryStore, FixedClock> {
            Notify {
                store: &self.store,
                clock: &self.clock,
            }
        }
    }

    #[test]
    fn a_paid_result_is_sent_as_a_paid_notification() {
        let world = World::new();
        let Delivery::Sent(sent) = world
            .notify()
            .deliver(&result("o-1", "Pavel", PaymentOutcome::Paid, Some(90)))
            .unwrap()
        else {
            panic!("the first delivery must send");
        };
        assert!(sent.paid);
        assert_eq!(
            (sent.reason.as_str(), sent.balance, sent.sent_at_ms),
            ("paid", Some(90), 1_000)
        );
        assert_eq!(
            sent.message,
            "Pavel, your order o-1 for 10 is paid. Balance: 90."
        );
    }

    #[test]
    fn refusals_say_why() {
        let world = World::new();
        world
            .notify()
            .deliver(&result(
                "o-1",
                "Pavel",
                PaymentOutcome::InsufficientFunds,
                Some(5),
            ))
            .unwrap();
        world
            .notify()
            .deliver(&result("o-2", "Ghost", PaymentOutcome::UnknownUser, None))
            .unwrap();
        let listed = world.notify().list(None).unwrap().notifications;
        let reasons: Vec<_> = listed.iter().map(|n| (n.paid, n.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [(false, "insufficient_funds"), (false, "unknown_user")]
        );
        assert!(listed[0].message.contains("insufficient funds (balance 5)"));
    }

    #[test]
    fn a_redelivered_result_is_not_sent_twice() {
        let world = World::new();
        let paid = result("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        let Delivery::Sent(first) = world.notify().deliver(&paid).unwrap() else {
            panic!()
        };
        world.clock.advance(10);
        assert_eq!(
            world.notify().deliver(&paid).unwrap(),
            Delivery::AlreadySent(first)
        );
        assert_eq!(world.notify().list(None).unwrap().notifications.len(), 1);
    }

    #[test]
    fn the_list_is_oldest_first_and_can_be_narrowed_to_one_user() {
        let world = World::new();
        for (id, user) in [("o-3", "Pavel"), ("o-1", "Anna"), ("o-2", "Pavel")] {
            world
                .notify()
                .deliver(&result(id, user, PaymentOutcome::Paid, Some(1)))
                .unwrap();
            world.clock.advance(1);
        }
        let all: Vec<_> = world
            .notify()
            .list(None)
            .unwrap()
            .notifications
            .into_iter()
            .map(|n| n.order_id)
            .collect();
        assert_eq!(all, ["o-3", "o-1", "o-2"]);
        let pavel: Vec<_> = world
            .notify()
            .list(Some(" Pavel "))
            .unwrap()
            .notifications
            .into_iter()
            .map(|n| n.order_id)
            .collect();
        assert_eq!(pavel, ["o-3", "o-2"]);
    }

    #[test]
    fn malformed_results_store_nothing() {
        let world = World::new();
        let mut unknown = result("o-1", "Pavel", PaymentOutcome::Paid, None);
        unknown.outcome = 99;
        assert!(matches!(
            world.notify().deliver(&unknown),
            Err(NotifyError::UnknownOutcome(_))
        ));
        assert!(world
            .notify()
            .deliver(&result("bad id", "Pavel", PaymentOutcome::Paid, None))
            .is_err());
        assert!(world
            .notify()
            .deliver(&result("o-2", "", PaymentOutcome::Paid, None))
            .is_err());
        assert!(world.store.keys().unwrap().is_empty());
    }

    #[test]
    fn listing_for_an_invalid_user_name_is_refused() {
        let world = World::new();
        assert_eq!(world.notify().list(Some("  ")).unwrap_err().status(), 422);
    }
}
