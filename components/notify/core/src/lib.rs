//! notify's rules, free of any host: turn each payment result and each refund into a
//! notification, "send" it once however often it is delivered, list what was sent, and tell where
//! an order stands.
//!
//! State, each record created once (compare-and-swap against "absent"), so a redelivery neither
//! sends nor stores anything a second time:
//! - `notification␟<user>␟<order id>` (tokens separated by U+001F, [`orders_wire::keys`]): the
//!   [`Notification`] sent for the order's payment result. Grouped by user, so that one user's
//!   notifications are read without reading anyone else's, however many are stored;
//! - `notification␟<user>␟<order id>␟<refund id>`: the one sent for a refund of the order, found
//!   with the order's;
//! - `deadletter␟<consumer>␟<SHA-256 of the payload>`: a message a consumer gave up on
//!   (its [`DeadLetter`] with `settled` false, from `deadletter.<consumer>`: whether it is settled
//!   is read when it is listed), so that the admin sees what is stuck;
//!   grouped, so that they are read without reading the notifications.
//!
//! Who may read: a user's notifications and orders need that user's API key or the admin token;
//! everyone's notifications and the dead letters need the admin token ([`orders_domain::auth`]). An order of another
//! user is answered as unknown, like an order that does not exist.

pub mod service;

use orders_domain::api::ApiError;
use orders_domain::auth::{AuthError, Caller};
use orders_domain::batch::answer_each;
use orders_domain::ports::{
    decode_record, CasStore, CasWrite, Clock, PlacedOrders, RecordStore, Revision, Scan, ScanBy,
    StoreError,
};
use orders_domain::{
    Amount, InvalidValue, OrderId, PageRequest, RefundId, UserName, MAX_REFUNDS_PER_ORDER,
};
use orders_wire::keys::{self, ALL_FOLLOWING, ANY_TOKEN};
use orders_wire::proto::{
    DeadLetter, DeadLettersResponse, ListResponse, Notification, OrderPlaced, OrderReference,
    OrderStatusResponse, PaymentOutcome, PaymentResult, RefundResult,
};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

/// notify's errors. HTTP statuses: `Invalid` 422, `Auth` 401/403/503 (see
/// [`orders_domain::auth`]), `UnknownOrder` 404, `Store` 503. `UnknownOutcome` comes only from the
/// broker (a result we cannot word) and never reaches HTTP.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("payment result for order `{0}` has no known outcome")]
    UnknownOutcome(String),
    #[error("no order `{0}` is known to you")]
    UnknownOrder(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError for NotifyError {
    fn status(&self) -> u16 {
        match self {
            Self::Invalid(invalid) => invalid.status(),
            Self::Auth(auth) => auth.status(),
            Self::UnknownOutcome(_) => 422,
            Self::UnknownOrder(_) => 404,
            Self::Store(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(invalid) => invalid.code(),
            Self::Auth(auth) => auth.code(),
            Self::UnknownOutcome(_) => "unknown_outcome",
            Self::UnknownOrder(_) => "unknown_order",
            Self::Store(_) => "store_unavailable",
        }
    }
}

/// The first token of a notification's key.
const NOTIFICATIONS: &str = "notification";
/// The first token of a dead letter's key: `deadletter␟<consumer>␟<sha-256 of the payload>`, so
/// that the dead letters are found without reading the notifications beside them.
const DEAD_LETTERS: &str = "deadletter";
/// How many dead letters one read of the key index returns.
const DEAD_LETTERS_PAGE: u32 = 1000;

/// Where the notification of `user`'s order `id` is stored.
fn notification_key(user: &str, id: &str) -> String {
    keys::of(&[NOTIFICATIONS, user, id])
}

/// Where `notification` is stored: its order's key, and its refund's id for a refund's.
fn key_of(notification: &Notification) -> String {
    match &notification.refund_id {
        None => notification_key(&notification.user, &notification.order_id),
        Some(refund) => keys::of(&[
            NOTIFICATIONS,
            &notification.user,
            &notification.order_id,
            refund,
        ]),
    }
}

/// What notify is told of: an order's payment result, or a refund applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Payment(PaymentResult),
    Refund(RefundResult),
}

impl From<&PaymentResult> for Settled {
    fn from(result: &PaymentResult) -> Self {
        Self::Payment(result.clone())
    }
}

impl From<&RefundResult> for Settled {
    fn from(result: &RefundResult) -> Self {
        Self::Refund(result.clone())
    }
}

impl Settled {
    /// The order it is about, for logs.
    pub fn order_id(&self) -> &str {
        match self {
            Self::Payment(result) => &result.order_id,
            Self::Refund(refund) => &refund.order_id,
        }
    }
}

/// What handling a payment result did.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// First delivery: this notification was just sent and stored.
    Sent(Notification),
    /// A redelivery: the notification was sent before; nothing was sent again.
    AlreadySent(Notification),
}

pub struct Notify<'a, S: ?Sized, C: ?Sized, P: ?Sized> {
    pub store: &'a S,
    pub clock: &'a C,
    /// The placed orders, as the broker's stream keeps them.
    pub orders: &'a P,
}

impl<S: CasStore + ?Sized, C: Clock + ?Sized, P: PlacedOrders + ?Sized> Notify<'_, S, C, P> {
    pub fn deliver(&self, result: impl Into<Settled>) -> Result<Delivery, NotifyError> {
        self.deliver_all(&[result.into()])
            .pop()
            .expect("one delivery per result")
    }

    /// [`Self::deliver`] of every result, with one write creating all their notifications and,
    /// when some were sent before (redeliveries), one read of those. One answer per result, in
    /// order; a malformed result fails alone.
    pub fn deliver_all(&self, results: &[Settled]) -> Vec<Result<Delivery, NotifyError>> {
        let now = self.clock.now_ms();
        answer_each(
            results,
            |result| notification_of(result, now).map_err(Err),
            |notifications| self.create_all(&notifications),
        )
    }

    /// Creates every notification that was not sent before, with one write. A notification twice
    /// in the batch (a result delivered twice) is created once, and its second answer is
    /// [`Delivery::AlreadySent`]. One answer per notification, in order.
    fn create_all(&self, notifications: &[Notification]) -> Vec<Result<Delivery, NotifyError>> {
        let mut writes: Vec<CasWrite> = Vec::new();
        // Which write creates each notification: a twin's is its first's.
        let write_of: Vec<usize> = notifications
            .iter()
            .map(|notification| {
                let key = key_of(notification);
                writes.iter().position(|w| w.key == key).unwrap_or_else(|| {
                    writes.push(CasWrite::record(key, notification, None));
                    writes.len() - 1
                })
            })
            .collect();
        let created = match self.create_or_read(&writes) {
            Ok(created) => created,
            Err(failed) => {
                return write_of
                    .iter()
                    .map(|_| Err(failed.clone().into()))
                    .collect()
            }
        };
        let mut answered = vec![false; writes.len()];
        write_of
            .into_iter()
            .map(|write| {
                let (sent_now, stored) = &created[write];
                let first = !std::mem::replace(&mut answered[write], true);
                Ok(if *sent_now && first {
                    Delivery::Sent(stored.clone())
                } else {
                    Delivery::AlreadySent(stored.clone())
                })
            })
            .collect()
    }

    /// Creates each record unless its key exists: `(true, written)` for those created now,
    /// `(false, stored)` with the record stored earlier for the others.
    fn create_or_read(&self, writes: &[CasWrite]) -> Result<Vec<(bool, Notification)>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let written = self.store.write_many(writes)?;
        let existing: Vec<String> = writes
            .iter()
            .zip(&written)
            .filter(|(_, revision)| revision.is_none())
            .map(|(w, _)| w.key.clone())
            .collect();
        let mut earlier = if existing.is_empty() {
            Vec::new()
        } else {
            self.store.read_records::<Notification>(&existing)?
        }
        .into_iter()
        .zip(existing);
        writes
            .iter()
            .zip(written)
            .map(|(w, revision)| match revision {
                Some(_) => Ok((true, decode_record(&w.key, &w.value)?)),
                None => {
                    let (found, key) = earlier.next().expect("one read per existing key");
                    let (stored, _) = found
                        .ok_or_else(|| StoreError::Unavailable(format!("`{key}` vanished")))?;
                    Ok((false, stored))
                }
            })
            .collect()
    }

    /// Where one order stands: settled (paid or refused, from its notification), pending (placed,
    /// as the broker's stream keeps it, but not settled yet), or unknown to this caller.
    pub fn order_status(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<OrderStatusResponse, NotifyError> {
        let id = OrderId::parse(order_id)?;
        // An order published malformed (billing dead-letters it) was never a valid order.
        // Not in the stream: older than the stream keeps, or never placed.
        let placed = self.orders.find(&id)?.and_then(well_formed);
        let notified = match &placed {
            Some(placed) => self
                .store
                .read_record::<Notification>(&notification_key(&placed.user, id.as_str()))?
                .map(|(notification, _)| notification),
            // Its placing is no longer at hand: the order's notification, whoever's it is.
            None => self
                .store
                .scan_records::<Notification>(Scan {
                    filter: &keys::of(&[NOTIFICATIONS, ANY_TOKEN, id.as_str()]),
                    by: ScanBy::KeyIndex,
                    after: None,
                    limit: 1,
                })?
                .0
                .pop(),
        };
        let (user, sum) = match (&notified, &placed) {
            (Some(notification), _) => (&notification.user, notification.sum),
            (None, Some(placed)) => (&placed.user, placed.sum),
            (None, None) => return Err(NotifyError::UnknownOrder(id.to_string())),
        };
        let owner = UserName::parse(user)?;
        match caller.require_user_or_admin(&owner) {
            Err(AuthError::AnotherUsersKey) => {
                return Err(NotifyError::UnknownOrder(id.to_string()))
            }
            other => other.map(drop)?,
        }
        let refunded = match &notified {
            Some(paid) if paid.paid => self.refunded(paid)?,
            _ => 0,
        };
        let state = match &notified {
            None => "pending",
            Some(_) if refunded == sum => "refunded",
            Some(_) if refunded > 0 => "partially_refunded",
            Some(notification) if notification.paid => "paid",
            Some(_) => "refused",
        };
        Ok(OrderStatusResponse {
            status: true,
            order_id: id.to_string(),
            user: owner.to_string(),
            sum,
            state: state.to_string(),
            placed_at_ms: placed.map(|placed| placed.placed_at_ms),
            reason: notified.as_ref().map(|n| n.reason.clone()),
            balance: notified.as_ref().and_then(|n| n.balance),
            notified_at_ms: notified.as_ref().map(|n| n.sent_at_ms),
            refunded,
        })
    }

    /// How much of the order `paid` tells of was refunded, by the refunds notified so far.
    fn refunded(&self, paid: &Notification) -> Result<u64, NotifyError> {
        let filter = keys::of(&[NOTIFICATIONS, &paid.user, &paid.order_id, ANY_TOKEN]);
        let (refunds, _) = self.store.scan_records::<Notification>(Scan {
            filter: &filter,
            by: ScanBy::KeyIndex,
            after: None,
            limit: MAX_REFUNDS_PER_ORDER,
        })?;
        Ok(refunds.iter().map(|refund| refund.sum).sum())
    }

    /// Remembers a message `consumer` gave up on; `false` when this payload was recorded before.
    /// A payload that is not an order or a payment result is recorded too, without order fields.
    pub fn record_dead_letter(&self, consumer: &str, payload: &[u8]) -> Result<bool, NotifyError> {
        let order = OrderReference::decode(payload).unwrap_or_default();
        let record = DeadLetter {
            consumer: consumer.to_string(),
            order_id: order.order_id,
            user: order.user,
            sum: order.sum,
            recorded_at_ms: self.clock.now_ms(),
            settled: false,
        };
        let key = keys::of(&[
            DEAD_LETTERS,
            consumer,
            &hex::encode(Sha256::digest(payload)),
        ]);
        Ok(self.store.write_record(&key, &record, None)?.is_some())
    }

    /// The dead letters, oldest first, each with whether its order has been notified since.
    pub fn dead_letters(&self, caller: &Caller) -> Result<DeadLettersResponse, NotifyError> {
        caller.require_admin()?;
        // Dead letters are few among everything notify stores: found through the key index.
        let filter = keys::of(&[DEAD_LETTERS, ALL_FOLLOWING]);
        let mut dead_letters: Vec<DeadLetter> = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.store.scan_records(Scan {
                filter: &filter,
                by: ScanBy::KeyIndex,
                after,
                limit: DEAD_LETTERS_PAGE,
            })?;
            dead_letters.extend(page);
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Each order's notification, where the dead letter names a valid order of a valid user.
        let notification_keys: Vec<Option<String>> = dead_letters
            .iter()
            .map(|letter| {
                let user = UserName::parse(&letter.user).ok()?;
                let id = OrderId::parse(&letter.order_id).ok()?;
                Some(notification_key(user.as_str(), id.as_str()))
            })
            .collect();
        let notified = self.store.get_many(
            &notification_keys
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>(),
        )?;
        let mut notified = notified.into_iter();
        // `notified` holds an answer for each dead letter that has a key, in order.
        for (letter, key) in dead_letters.iter_mut().zip(&notification_keys) {
            letter.settled = key.is_some() && notified.next().flatten().is_some();
        }
        dead_letters.sort_by(|a, b| {
            (a.recorded_at_ms, &a.consumer, &a.order_id).cmp(&(
                b.recorded_at_ms,
                &b.consumer,
                &b.order_id,
            ))
        });
        let count = u32::try_from(dead_letters.len()).unwrap_or(u32::MAX);
        let unsettled =
            u32::try_from(dead_letters.iter().filter(|d| !d.settled).count()).unwrap_or(u32::MAX);
        Ok(DeadLettersResponse {
            status: true,
            count,
            unsettled,
            dead_letters,
        })
    }

    /// One page of every notification (for the admin), or of one user's (for that user or the
    /// admin), oldest first. One user's are read without reading anyone else's.
    pub fn list(
        &self,
        caller: &Caller,
        user: Option<&str>,
        page: PageRequest,
    ) -> Result<ListResponse, NotifyError> {
        let user = user.map(UserName::parse).transpose()?;
        // One user's notifications are few among everyone's: found through the key index. Of
        // everyone's, every other key in the bucket is one: walked in write order.
        let (filter, by) = match &user {
            Some(user) => {
                caller.require_user_or_admin(user)?;
                let filter = keys::of(&[NOTIFICATIONS, user.as_str(), ALL_FOLLOWING]);
                (filter, ScanBy::KeyIndex)
            }
            None => {
                caller.require_admin()?;
                (
                    keys::of(&[NOTIFICATIONS, ALL_FOLLOWING]),
                    ScanBy::WriteOrder,
                )
            }
        };
        let (notifications, next) = self.store.scan_records::<Notification>(Scan {
            filter: &filter,
            by,
            after: page.after.map(Revision),
            limit: page.limit,
        })?;
        Ok(ListResponse {
            status: true,
            notifications,
            next_after: next.map(|revision| revision.0),
        })
    }
}

/// The notification `settled` becomes, sent at `now`.
fn notification_of(settled: &Settled, now: u64) -> Result<Notification, NotifyError> {
    match settled {
        Settled::Payment(result) => payment_notification(result, now),
        Settled::Refund(refund) => refund_notification(refund, now),
    }
}

fn refund_notification(refund: &RefundResult, now: u64) -> Result<Notification, NotifyError> {
    let id = OrderId::parse(&refund.order_id)?;
    let user = UserName::parse(&refund.user)?;
    let sum = Amount::parse_unsigned(refund.sum)?.get();
    let refund_id = RefundId::parse(&refund.refund_id)?;
    let (refunded, paid, balance) = (refund.refunded, refund.order_sum, refund.balance);
    Ok(Notification {
        order_id: id.to_string(),
        user: user.to_string(),
        sum,
        paid: false,
        reason: "refunded".to_string(),
        balance: Some(balance),
        message: format!(
            "{user}, {sum} of your order {id} is refunded ({refunded} of {paid} by now). \
             Balance: {balance}."
        ),
        sent_at_ms: now,
        refund_id: Some(refund_id.to_string()),
    })
}

/// The notification a payment result becomes, sent at `now`.
fn payment_notification(result: &PaymentResult, now: u64) -> Result<Notification, NotifyError> {
    let id = OrderId::parse(&result.order_id)?;
    let user = UserName::parse(&result.user)?;
    let sum = Amount::parse_unsigned(result.sum)?;
    let outcome = match PaymentOutcome::try_from(result.outcome) {
        Ok(PaymentOutcome::Unspecified) | Err(_) => {
            return Err(NotifyError::UnknownOutcome(id.to_string()))
        }
        Ok(known) => known,
    };
    Ok(Notification {
        order_id: id.to_string(),
        user: user.to_string(),
        sum: sum.get(),
        paid: outcome == PaymentOutcome::Paid,
        reason: reason(outcome).to_string(),
        balance: result.balance,
        message: message(&user, &id, sum, outcome, result.balance),
        sent_at_ms: now,
        refund_id: None,
    })
}

/// A placed order read back from the stream as order would have placed it (names as parsed:
/// trimmed); `None` when it is malformed, as the status tells nothing of such an order.
fn well_formed(placed: OrderPlaced) -> Option<OrderPlaced> {
    Some(OrderPlaced {
        order_id: OrderId::parse(&placed.order_id).ok()?.to_string(),
        user: UserName::parse(&placed.user).ok()?.to_string(),
        sum: Amount::parse_unsigned(placed.sum).ok()?.get(),
        ..placed
    })
}

fn reason(outcome: PaymentOutcome) -> &'static str {
    match outcome {
        PaymentOutcome::Paid => "paid",
        PaymentOutcome::InsufficientFunds => "insufficient_funds",
        PaymentOutcome::UnknownUser | PaymentOutcome::Unspecified => "unknown_user",
        PaymentOutcome::KeyReplaced => "key_replaced",
    }
}

fn message(
    user: &UserName,
    id: &OrderId,
    sum: Amount,
    outcome: PaymentOutcome,
    balance: Option<u64>,
) -> String {
    let sum = sum.get();
    let refused = format!("{user}, your order {id} for {sum} could not be paid");
    match (outcome, balance) {
        (PaymentOutcome::Paid, Some(balance)) => {
            format!("{user}, your order {id} for {sum} is paid. Balance: {balance}.")
        }
        (PaymentOutcome::InsufficientFunds, Some(balance)) => {
            format!("{refused}: insufficient funds (balance {balance}).")
        }
        (PaymentOutcome::KeyReplaced, _) => format!(
            "{refused}: it was placed with an API key that had been replaced. Nothing was charged."
        ),
        _ => format!("{refused}: there is no account for you."),
    }
}

#[cfg(test)]
mod tests {
    use orders_domain::memory::{
        self, FixedClock, MemoryHost, MemoryPublisher, MemoryStore, ADMIN_TOKEN,
    };
    use orders_domain::ports::Publisher as _;
    use orders_wire::subjects;

    use super::*;

    fn first_page() -> PageRequest {
        PageRequest::parse(None, None).unwrap()
    }

    fn admin() -> Caller {
        memory::caller(ADMIN_TOKEN)
    }

    fn key_of(user: &str) -> Caller {
        let user = UserName::parse(user).unwrap();
        memory::caller(&memory::authenticator().keys.issue(&user, [5; 16]).key)
    }

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
        /// Its broker is the stream of placed orders.
        host: MemoryHost,
    }

    impl World {
        fn new() -> Self {
            Self {
                host: MemoryHost::at(1_000),
            }
        }

        /// Delivers `id`'s payment result (see [`result`]), which is notified.
        fn settled(&self, id: &str, user: &str, outcome: PaymentOutcome, balance: Option<u64>) {
            self.notify()
                .deliver(&result(id, user, outcome, balance))
                .unwrap();
        }

        fn notify(&self) -> Notify<'_, MemoryStore, FixedClock, MemoryPublisher> {
            crate::service::notify(&self.host)
        }

        /// Places an order as order does: on its partition, under its id.
        fn place(&self, order: OrderPlaced) {
            let id = OrderId::parse(&order.order_id).unwrap();
            self.host
                .broker
                .publish_message(&subjects::order_placed(&order.user, &id), &order)
                .unwrap();
        }
    }

    #[test]
    fn a_batch_of_results_is_notified_with_one_write_and_each_redelivery_sent_once() {
        let world = World::new();
        let paid = result("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        world.notify().deliver(&paid).unwrap();
        world.host.store.take_operations();
        let refused = result("o-2", "Olga", PaymentOutcome::InsufficientFunds, Some(0));
        let malformed = result("", "Olga", PaymentOutcome::Paid, Some(0));
        let answers = world
            .notify()
            .deliver_all(&[paid, refused.clone(), malformed, refused].map(|r| Settled::from(&r)));
        let operations = world.host.store.take_operations();
        assert_eq!(
            (operations.writes, operations.reads),
            (1, 1),
            "one write creates the new ones, one read finds those sent before"
        );
        assert!(matches!(answers[0], Ok(Delivery::AlreadySent(_))));
        assert!(matches!(answers[1], Ok(Delivery::Sent(_))));
        assert!(matches!(answers[2], Err(NotifyError::Invalid(_))));
        assert!(
            matches!(&answers[3], Ok(Delivery::AlreadySent(n)) if n.order_id == "o-2"),
            "a result twice in one batch is sent once"
        );
        assert_eq!(world.host.store.keys().len(), 2);
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
        world.settled("o-1", "Pavel", PaymentOutcome::InsufficientFunds, Some(5));
        world.settled("o-2", "Ghost", PaymentOutcome::UnknownUser, None);
        let listed = world
            .notify()
            .list(&admin(), None, first_page())
            .unwrap()
            .notifications;
        let reasons: Vec<_> = listed.iter().map(|n| (n.paid, n.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [(false, "insufficient_funds"), (false, "unknown_user")]
        );
        assert!(listed[0].message.contains("insufficient funds (balance 5)"));
    }

    #[test]
    fn an_order_refused_for_a_replaced_key_says_so() {
        let world = World::new();
        let refused = result("o-1", "Pavel", PaymentOutcome::KeyReplaced, Some(100));
        let Delivery::Sent(sent) = world.notify().deliver(&refused).unwrap() else {
            panic!("the first delivery must send");
        };
        assert_eq!((sent.paid, sent.reason.as_str()), (false, "key_replaced"));
        assert!(sent.message.contains("API key that had been replaced"));
    }

    #[test]
    fn a_users_notifications_are_shown_to_that_user_and_the_admin_only() {
        let world = World::new();
        world.settled("o-1", "Pavel", PaymentOutcome::Paid, Some(1));
        let mine = world
            .notify()
            .list(&key_of("Pavel"), Some("Pavel"), first_page())
            .unwrap();
        assert_eq!(mine.notifications.len(), 1);
        assert_eq!(
            world
                .notify()
                .list(&admin(), Some("Pavel"), first_page())
                .unwrap()
                .notifications,
            mine.notifications
        );
        let refused = world
            .notify()
            .list(&key_of("Anna"), Some("Pavel"), first_page())
            .unwrap_err();
        assert_eq!((refused.status(), refused.code()), (403, "forbidden"));
    }

    #[test]
    fn everyones_notifications_are_for_the_admin_only() {
        let world = World::new();
        let refused = world
            .notify()
            .list(&key_of("Pavel"), None, first_page())
            .unwrap_err();
        assert_eq!((refused.status(), refused.code()), (403, "forbidden"));
    }

    #[test]
    fn a_redelivered_result_is_not_sent_twice() {
        let world = World::new();
        let paid = result("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        let Delivery::Sent(first) = world.notify().deliver(&paid).unwrap() else {
            panic!()
        };
        world.host.clock.advance(10);
        assert_eq!(
            world.notify().deliver(&paid).unwrap(),
            Delivery::AlreadySent(first)
        );
        assert_eq!(
            world
                .notify()
                .list(&admin(), None, first_page())
                .unwrap()
                .notifications
                .len(),
            1
        );
    }

    #[test]
    fn the_list_is_oldest_first_and_can_be_narrowed_to_one_user() {
        let world = World::new();
        for (id, user) in [("o-3", "Pavel"), ("o-1", "Anna"), ("o-2", "Pavel")] {
            world.settled(id, user, PaymentOutcome::Paid, Some(1));
            world.host.clock.advance(1);
        }
        let all: Vec<_> = world
            .notify()
            .list(&admin(), None, first_page())
            .unwrap()
            .notifications
            .into_iter()
            .map(|n| n.order_id)
            .collect();
        assert_eq!(all, ["o-3", "o-1", "o-2"]);
        let pavel: Vec<_> = world
            .notify()
            .list(&key_of("Pavel"), Some(" Pavel "), first_page())
            .unwrap()
            .notifications
            .into_iter()
            .map(|n| n.order_id)
            .collect();
        assert_eq!(pavel, ["o-3", "o-2"]);
    }

    #[test]
    fn a_long_list_is_read_page_by_page_and_each_notification_once() {
        let world = World::new();
        for n in 0..5 {
            for user in ["Pavel", "Anna"] {
                world.settled(&format!("{user}-{n}"), user, PaymentOutcome::Paid, Some(1));
            }
        }
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page = PageRequest { after, limit: 2 };
            let listed = world
                .notify()
                .list(&key_of("Pavel"), Some("Pavel"), page)
                .unwrap();
            pages.push(
                listed
                    .notifications
                    .iter()
                    .map(|n| n.order_id.clone())
                    .collect::<Vec<_>>(),
            );
            match listed.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            pages,
            [
                vec!["Pavel-0", "Pavel-1"],
                vec!["Pavel-2", "Pavel-3"],
                vec!["Pavel-4"]
            ]
        );
        let everyone = world
            .notify()
            .list(
                &admin(),
                None,
                PageRequest {
                    after: None,
                    limit: 1000,
                },
            )
            .unwrap();
        assert_eq!(
            (everyone.notifications.len(), everyone.next_after),
            (10, None)
        );
    }

    #[test]
    fn an_order_settled_before_notify_saw_it_placed_is_found_by_its_id() {
        let world = World::new();
        world.settled("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        let status = world.notify().order_status(&admin(), "o-1").unwrap();
        assert_eq!(
            (status.user.as_str(), status.state.as_str()),
            ("Pavel", "paid")
        );
        let hidden = world
            .notify()
            .order_status(&key_of("Anna"), "o-1")
            .unwrap_err();
        assert_eq!(
            hidden.status(),
            404,
            "another user's order is unknown to Anna"
        );
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
        assert!(world.host.store.keys().is_empty());
    }

    fn placed(id: &str, user: &str) -> OrderPlaced {
        OrderPlaced {
            order_id: id.into(),
            user: user.into(),
            sum: 10,
            placed_at_ms: 500,
            key_sha256: vec![],
        }
    }

    #[test]
    fn an_order_placed_but_not_settled_is_pending() {
        let world = World::new();
        world.place(placed("o-1", "Pavel"));
        let status = world
            .notify()
            .order_status(&key_of("Pavel"), "o-1")
            .unwrap();
        assert_eq!(
            (status.state.as_str(), status.user.as_str(), status.sum),
            ("pending", "Pavel", 10)
        );
        assert_eq!(
            (status.placed_at_ms, status.reason, status.balance),
            (Some(500), None, None)
        );
    }

    fn refund(id: &str, refund: u8, sum: u64, refunded: u64) -> RefundResult {
        RefundResult {
            order_id: id.into(),
            user: "Pavel".into(),
            sum,
            refund_id: RefundId::from_random([refund; 16]).to_string(),
            order_sum: 10,
            refunded,
            balance: 80 + refunded,
            refunded_at_ms: 900,
            entry: 3,
        }
    }

    #[test]
    fn a_refund_is_sent_once_beside_its_orders_notification_and_moves_its_status() {
        let world = World::new();
        world.place(placed("o-1", "Pavel"));
        world.settled("o-1", "Pavel", PaymentOutcome::Paid, Some(80));
        let state = || {
            let status = world
                .notify()
                .order_status(&key_of("Pavel"), "o-1")
                .unwrap();
            (status.state, status.refunded)
        };
        let first = refund("o-1", 1, 4, 4);
        let Delivery::Sent(sent) = world.notify().deliver(&first).unwrap() else {
            panic!("a first refund is sent");
        };
        assert_eq!(
            (sent.reason.as_str(), sent.paid, sent.sum, sent.balance),
            ("refunded", false, 4, Some(84))
        );
        assert_eq!(
            sent.message,
            "Pavel, 4 of your order o-1 is refunded (4 of 10 by now). Balance: 84."
        );
        assert!(matches!(
            world.notify().deliver(&first).unwrap(),
            Delivery::AlreadySent(_)
        ));
        assert_eq!(state(), ("partially_refunded".to_string(), 4));
        world.notify().deliver(&refund("o-1", 2, 6, 10)).unwrap();
        assert_eq!(state(), ("refunded".to_string(), 10));
        let listed = world
            .notify()
            .list(&key_of("Pavel"), Some("Pavel"), first_page())
            .unwrap();
        let reasons: Vec<&str> = listed
            .notifications
            .iter()
            .map(|n| n.reason.as_str())
            .collect();
        assert_eq!(reasons, ["paid", "refunded", "refunded"]);
    }

    #[test]
    fn a_settled_order_shows_its_outcome_and_the_balance_after_it() {
        let world = World::new();
        world.place(placed("o-1", "Pavel"));
        world.place(placed("o-2", "Pavel"));
        world.settled("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        world.settled("o-2", "Pavel", PaymentOutcome::InsufficientFunds, Some(90));
        let paid = world.notify().order_status(&admin(), "o-1").unwrap();
        assert_eq!(
            (paid.state.as_str(), paid.reason.as_deref(), paid.balance),
            ("paid", Some("paid"), Some(90))
        );
        assert_eq!(
            (paid.placed_at_ms, paid.notified_at_ms),
            (Some(500), Some(1_000))
        );
        let refused = world.notify().order_status(&admin(), "o-2").unwrap();
        assert_eq!(
            (refused.state.as_str(), refused.reason.as_deref()),
            ("refused", Some("insufficient_funds"))
        );
    }

    #[test]
    fn an_order_the_stream_no_longer_holds_is_told_by_its_notification() {
        let world = World::new();
        world.settled("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        let status = world
            .notify()
            .order_status(&key_of("Pavel"), "o-1")
            .unwrap();
        assert_eq!(
            (
                status.state.as_str(),
                status.user.as_str(),
                status.placed_at_ms
            ),
            ("paid", "Pavel", None)
        );
    }

    #[test]
    fn an_order_published_malformed_is_unknown() {
        let world = World::new();
        world.place(placed("o-1", " "));
        let unknown = world.notify().order_status(&admin(), "o-1").unwrap_err();
        assert_eq!((unknown.status(), unknown.code()), (404, "unknown_order"));
    }

    #[test]
    fn an_unreachable_broker_is_reported_as_unavailable() {
        let world = World::new();
        world.place(placed("o-1", "Pavel"));
        world.host.broker.broken.set(true);
        let failed = world.notify().order_status(&admin(), "o-1").unwrap_err();
        assert_eq!((failed.status(), failed.code()), (503, "store_unavailable"));
    }

    #[test]
    fn an_order_status_costs_one_lookup_in_the_stream_and_one_read() {
        let world = World::new();
        world.place(placed("o-1", "Pavel"));
        world.host.store.take_operations();
        world.notify().order_status(&admin(), "o-1").unwrap();
        let operations = world.host.store.take_operations();
        assert_eq!((operations.reads, operations.writes), (1, 0));
    }

    #[test]
    fn an_order_nobody_placed_is_unknown() {
        let world = World::new();
        let unknown = world.notify().order_status(&admin(), "o-9").unwrap_err();
        assert_eq!((unknown.status(), unknown.code()), (404, "unknown_order"));
    }

    #[test]
    fn another_users_order_is_as_unknown_to_them_as_one_that_does_not_exist() {
        let world = World::new();
        world.place(placed("o-1", "Pavel"));
        let hidden = world
            .notify()
            .order_status(&key_of("Anna"), "o-1")
            .unwrap_err();
        assert_eq!((hidden.status(), hidden.code()), (404, "unknown_order"));
    }

    #[test]
    fn a_malformed_order_id_is_refused() {
        let world = World::new();
        let refused = world
            .notify()
            .order_status(&admin(), "not an id")
            .unwrap_err();
        assert_eq!(
            (refused.status(), refused.code()),
            (422, "invalid_order_id")
        );
    }

    #[test]
    fn a_dead_letter_is_recorded_once_and_shown_to_the_admin_only() {
        let world = World::new();
        let order = placed("o-1", "Pavel").encode_to_vec();
        assert!(world
            .notify()
            .record_dead_letter("billing", &order)
            .unwrap());
        assert!(!world
            .notify()
            .record_dead_letter("billing", &order)
            .unwrap());
        assert!(world.notify().record_dead_letter("notify", &order).unwrap());
        let listed = world.notify().dead_letters(&admin()).unwrap();
        assert_eq!((listed.count, listed.unsettled), (2, 2));
        let first = &listed.dead_letters[0];
        assert_eq!(
            (
                first.consumer.as_str(),
                first.order_id.as_str(),
                first.user.as_str(),
                first.sum
            ),
            ("billing", "o-1", "Pavel", 10)
        );
        let refused = world.notify().dead_letters(&key_of("Pavel")).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (403, "forbidden"));
    }

    #[test]
    fn dead_letters_are_stored_apart_from_notifications_and_listed_past_one_page() {
        let world = World::new();
        world.settled("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        let letters = DEAD_LETTERS_PAGE + 1;
        for n in 0..letters {
            world
                .notify()
                .record_dead_letter("billing", format!("payload {n}").as_bytes())
                .unwrap();
        }
        let group = keys::of(&[DEAD_LETTERS, ALL_FOLLOWING]);
        let stored = world.host.store.keys();
        assert_eq!(
            stored
                .iter()
                .filter(|key| keys::matches(&group, key))
                .count(),
            letters as usize,
            "every dead letter in its group, no notification in it"
        );
        let listed = world.notify().dead_letters(&admin()).unwrap();
        assert_eq!(
            (listed.count, listed.dead_letters.len()),
            (letters, letters as usize)
        );
    }

    #[test]
    fn a_dead_letter_whose_order_was_notified_since_is_settled() {
        let world = World::new();
        let result = result("o-1", "Pavel", PaymentOutcome::Paid, Some(90));
        world
            .notify()
            .record_dead_letter("notify", &result.encode_to_vec())
            .unwrap();
        assert_eq!(world.notify().dead_letters(&admin()).unwrap().unsettled, 1);
        world.notify().deliver(&result).unwrap();
        let listed = world.notify().dead_letters(&admin()).unwrap();
        assert_eq!((listed.count, listed.unsettled), (1, 0));
        assert!(listed.dead_letters[0].settled);
    }

    #[test]
    fn a_dead_letter_that_is_no_order_is_recorded_without_order_fields() {
        let world = World::new();
        world
            .notify()
            .record_dead_letter("billing", b"\xff\xff not protobuf")
            .unwrap();
        let listed = world.notify().dead_letters(&admin()).unwrap();
        assert_eq!(listed.count, 1);
        assert_eq!(listed.dead_letters[0].order_id, "");
    }

    #[test]
    fn listing_for_an_invalid_user_name_is_refused() {
        let world = World::new();
        assert_eq!(
            world
                .notify()
                .list(&admin(), Some("  "), first_page())
                .unwrap_err()
                .status(),
            422
        );
    }
}
