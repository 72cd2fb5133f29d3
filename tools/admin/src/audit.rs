//! `audit`: every account's balance against its ledger, and the ledger against what was told.
//!
//! Read from the buckets as they are stored (billing's and notify's), never through the
//! components, so a mistake of theirs cannot hide itself. What must hold:
//! - an account's ledger is numbered 1 to its length without a gap, each entry moves the balance
//!   the one before it left by its amount (from 0), and the last leaves the account's balance;
//! - entries that left the account into a record of their own (a chunk, under the number of its
//!   first) are the ones it held;
//! - no order is debited twice, and every order billing settled as paid has its debit;
//! - every paid notification has its debit (same user, same sum), no refused one has a debit, and
//!   every debit has its paid notification, or a dead letter of the order or of its result;
//! - every refund gives back money of an order its account was debited for, never more than the
//!   debit in all, once per refund id; its record (once it left the account) is its entry; it has
//!   its notification (same sum) or a dead letter of the order, and every refund notification has
//!   its refund.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt as _;
use orders_wire::keys::{self, TOKEN_SEPARATOR};
use orders_wire::proto::{
    DeadLetter, EntryKind, LedgerChunk, LedgerEntry, Notification, PaymentOutcome, PaymentResult,
    StoredAccount,
};
use prost::Message;
use serde_json::{json, Value};

/// A bucket's keys (as the components name them) and their values.
pub type Bucket = BTreeMap<String, Vec<u8>>;

/// Every key of `bucket` with its value, read from its stream in one pass (the last message of
/// each key; deleted keys left out).
pub async fn read_bucket(js: &jetstream::Context, bucket: &str) -> anyhow::Result<Bucket> {
    let stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .with_context(|| format!("bucket {bucket}"))?;
    let prefix = format!("$KV.{bucket}.");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: format!("{prefix}>"),
            ..Default::default()
        })
        .await?;
    let mut contents = Bucket::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(contents);
    }
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let stored = message
            .subject
            .strip_prefix(prefix.as_str())
            .unwrap_or_default();
        let key = keys::stored::decode(stored)
            .with_context(|| format!("{bucket} holds a key no component wrote: {stored}"))?;
        let operation = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("KV-Operation"))
            .map(|value| value.as_str().to_string());
        match operation.as_deref() {
            Some("DEL" | "PURGE") => contents.remove(&key),
            _ => contents.insert(key, message.payload.to_vec()),
        };
        let pending = message.info().map_err(anyhow::Error::msg)?.pending;
        if pending == 0 {
            break;
        }
    }
    Ok(contents)
}

/// What the audit went through, and what did not hold.
#[derive(Debug, Default)]
pub struct Report {
    pub accounts: usize,
    pub entries: usize,
    pub debits: usize,
    pub refunds: usize,
    pub paid_notifications: usize,
    pub refused_notifications: usize,
    pub refund_notifications: usize,
    pub dead_letters: usize,
    pub mismatches: Vec<Value>,
}

impl Report {
    pub fn summary(&self) -> Value {
        json!({
            "accounts": self.accounts,
            "entries": self.entries,
            "debits": self.debits,
            "refunds": self.refunds,
            "paid_notifications": self.paid_notifications,
            "refused_notifications": self.refused_notifications,
            "refund_notifications": self.refund_notifications,
            "dead_letters": self.dead_letters,
            "mismatches": self.mismatches.len(),
        })
    }

    fn mismatch(&mut self, what: &str, details: Value) {
        let mut line = json!({ "mismatch": what });
        if let (Some(line), Value::Object(details)) = (line.as_object_mut(), details) {
            line.extend(details);
        }
        self.mismatches.push(line);
    }
}

/// Which user's order a debit paid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Debit {
    user: String,
    order_id: String,
}

/// One refund: which user's order, and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Credit {
    debit: Debit,
    refund_id: String,
}

/// Checks billing's bucket against itself and notify's (see the module's comment).
pub fn audit(billing: &Bucket, notify: &Bucket) -> Report {
    let mut report = Report::default();
    let mut ledger_records: HashMap<&str, BTreeMap<u64, LedgerEntry>> = HashMap::new();
    let mut settled_paid: Vec<PaymentResult> = Vec::new();
    // Refund records by order id and refund number.
    let mut refund_records: HashMap<(String, u32), LedgerEntry> = HashMap::new();
    for (key, value) in billing {
        if let Some(rest) = key.strip_prefix("refund/") {
            let parsed = rest
                .rsplit_once('/')
                .and_then(|(order, number)| Some((order.to_string(), number.parse::<u32>().ok()?)));
            match (parsed, LedgerEntry::decode(value.as_slice())) {
                (Some(at), Ok(entry)) => {
                    refund_records.insert(at, entry);
                }
                (None, _) => report.mismatch("malformed refund key", json!({ "key": key })),
                (_, Err(e)) => {
                    report.mismatch("undecodable", json!({ "key": key, "why": e.to_string() }))
                }
            }
            continue;
        }
        if let Some(rest) = key.strip_prefix("ledger/") {
            let parsed = rest
                .rsplit_once('/')
                .and_then(|(user, first)| Some((user, first.parse::<u64>().ok()?)));
            let Some((user, first)) = parsed else {
                report.mismatch("malformed ledger key", json!({ "key": key }));
                continue;
            };
            match LedgerChunk::decode(value.as_slice()) {
                Ok(chunk) => {
                    let numbers: Vec<u64> = chunk.entries.iter().map(|e| e.number).collect();
                    if !numbers
                        .iter()
                        .copied()
                        .eq(first..first + numbers.len() as u64)
                    {
                        report.mismatch(
                            "chunk of entries not numbered from its key",
                            json!({ "key": key, "numbers": numbers }),
                        );
                    }
                    let entries = ledger_records.entry(user).or_default();
                    entries.extend(chunk.entries.into_iter().map(|e| (e.number, e)));
                }
                Err(e) => {
                    report.mismatch("undecodable", json!({ "key": key, "why": e.to_string() }))
                }
            }
        } else if key.starts_with("payment/") {
            match PaymentResult::decode(value.as_slice()) {
                Ok(result) if result.outcome() == PaymentOutcome::Paid => settled_paid.push(result),
                Ok(_) => {}
                Err(e) => {
                    report.mismatch("undecodable", json!({ "key": key, "why": e.to_string() }))
                }
            }
        }
    }
    let mut debits: HashMap<Debit, u64> = HashMap::new();
    let mut credits: HashMap<Credit, u64> = HashMap::new();
    // How much of each debit its refunds seen so far gave back.
    let mut refunded: HashMap<Debit, u64> = HashMap::new();
    for (key, value) in billing {
        let Some(user) = key.strip_prefix("account/") else {
            continue;
        };
        let account = match StoredAccount::decode(value.as_slice()) {
            Ok(account) => account,
            Err(e) => {
                report.mismatch("undecodable", json!({ "key": key, "why": e.to_string() }));
                continue;
            }
        };
        report.accounts += 1;
        let records = ledger_records.remove(user).unwrap_or_default();
        for entry in ledger(&mut report, user, &account, &records) {
            report.entries += 1;
            if entry.kind() == EntryKind::Refund {
                report.refunds += 1;
                check_refund(
                    &mut report,
                    user,
                    &entry,
                    &debits,
                    &mut credits,
                    &mut refunded,
                    &mut refund_records,
                );
                continue;
            }
            if entry.kind() != EntryKind::Payment {
                continue;
            }
            report.debits += 1;
            let debit = Debit {
                user: user.to_string(),
                order_id: entry.order_id.clone(),
            };
            if debits.insert(debit, entry.amount).is_some() {
                report.mismatch(
                    "order debited twice",
                    json!({ "user": user, "order_id": entry.order_id }),
                );
            }
        }
        settled_paid.extend(
            account
                .settlements
                .iter()
                .filter(|s| s.outcome() == PaymentOutcome::Paid)
                .map(|s| PaymentResult {
                    order_id: s.order_id.clone(),
                    user: user.to_string(),
                    sum: s.sum,
                    ..Default::default()
                }),
        );
    }
    for ((order_id, number), _) in refund_records {
        report.mismatch(
            "refund record of no refund entry",
            json!({ "order_id": order_id, "refund_number": number }),
        );
    }
    for (user, records) in ledger_records {
        report.mismatch(
            "ledger entries of no account",
            json!({ "user": user, "entries": records.len() }),
        );
    }
    for paid in settled_paid {
        let debit = Debit {
            user: paid.user.clone(),
            order_id: paid.order_id.clone(),
        };
        if debits.get(&debit) != Some(&paid.sum) {
            report.mismatch(
                "paid without its debit",
                json!({ "user": paid.user, "order_id": paid.order_id, "sum": paid.sum }),
            );
        }
    }
    check_notifications(&mut report, notify, &debits, &credits);
    report
}

/// A refund entry of `user`'s, the account's entries before it already seen: its order was
/// debited in this account before it, its refunds so far (`refunded`) and it stay within the
/// debit, its id is new for the order (`credits`), and its record (if it has one, taken from
/// `refund_records`) is it.
fn check_refund(
    report: &mut Report,
    user: &str,
    entry: &LedgerEntry,
    debits: &HashMap<Debit, u64>,
    credits: &mut HashMap<Credit, u64>,
    refunded: &mut HashMap<Debit, u64>,
    refund_records: &mut HashMap<(String, u32), LedgerEntry>,
) {
    let debit = Debit {
        user: user.to_string(),
        order_id: entry.order_id.clone(),
    };
    let total = refunded.entry(debit.clone()).or_default();
    *total += entry.amount;
    let total = *total;
    match debits.get(&debit) {
        None => report.mismatch(
            "refund of an order not debited",
            json!({ "user": user, "order_id": entry.order_id, "entry": entry.number }),
        ),
        Some(&paid) if total > paid => report.mismatch(
            "refunded more than was paid",
            json!({ "user": user, "order_id": entry.order_id, "paid": paid, "refunded": total }),
        ),
        Some(_) => {}
    }
    let credit = Credit {
        debit,
        refund_id: entry.refund_id.clone(),
    };
    if credits.insert(credit, entry.amount).is_some() {
        report.mismatch(
            "refund applied twice",
            json!({ "user": user, "order_id": entry.order_id, "refund_id": entry.refund_id }),
        );
    }
    if let Some(record) = refund_records.remove(&(entry.order_id.clone(), entry.refund_number)) {
        if record != *entry {
            report.mismatch(
                "refund record differs from its entry",
                json!({ "user": user, "order_id": entry.order_id, "entry": entry.number }),
            );
        }
    }
}

/// The account's entries in order, from its records and its own, each checked against the one
/// before it; what does not hold is added to `report`.
fn ledger(
    report: &mut Report,
    user: &str,
    account: &StoredAccount,
    records: &BTreeMap<u64, LedgerEntry>,
) -> Vec<LedgerEntry> {
    let length = account.ledger_length;
    let first_recent = (length + 1).saturating_sub(account.recent_entries.len() as u64);
    let mut entries = Vec::with_capacity(length as usize);
    for (&number, entry) in records {
        if number >= first_recent {
            // Written before a write of the account that lost: the account must hold the same.
            let held = account.recent_entries.iter().find(|e| e.number == number);
            if held != Some(entry) {
                report.mismatch(
                    "entry record differs from the account's",
                    json!({ "user": user, "entry": number }),
                );
            }
        } else {
            entries.push(entry.clone());
        }
    }
    entries.extend(account.recent_entries.iter().cloned());
    let mut balance = 0u64;
    for (expected, entry) in (1..).zip(&entries) {
        if entry.number != expected {
            report.mismatch(
                "ledger has a gap",
                json!({ "user": user, "expected": expected, "found": entry.number }),
            );
            return entries;
        }
        let moved = match entry.kind() {
            EntryKind::Deposit | EntryKind::Refund => balance.checked_add(entry.amount),
            EntryKind::Payment => balance.checked_sub(entry.amount),
            EntryKind::Unspecified => None,
        };
        if entry.amount == 0 || moved != Some(entry.balance_after) {
            report.mismatch(
                "entry does not follow from the one before",
                json!({ "user": user, "entry": entry.number, "balance_before": balance,
                        "kind": entry.kind, "amount": entry.amount, "balance_after": entry.balance_after }),
            );
        }
        balance = entry.balance_after;
    }
    if entries.len() as u64 != length {
        report.mismatch(
            "ledger shorter than the account counts",
            json!({ "user": user, "length": length, "found": entries.len() }),
        );
    } else if balance != account.balance {
        report.mismatch(
            "balance differs from its ledger",
            json!({ "user": user, "balance": account.balance, "ledger": balance }),
        );
    }
    entries
}

fn check_notifications(
    report: &mut Report,
    notify: &Bucket,
    debits: &HashMap<Debit, u64>,
    credits: &HashMap<Credit, u64>,
) {
    let notification_prefix = format!("notification{TOKEN_SEPARATOR}");
    let dead_letter_prefix = format!("deadletter{TOKEN_SEPARATOR}");
    let mut notified_paid = HashSet::new();
    let mut notified_refunds = HashSet::new();
    let mut dead_lettered = HashSet::new();
    for (key, value) in notify {
        if key.starts_with(&dead_letter_prefix) {
            if let Ok(letter) = DeadLetter::decode(value.as_slice()) {
                report.dead_letters += 1;
                dead_lettered.insert(letter.order_id);
            }
            continue;
        }
        if !key.starts_with(&notification_prefix) {
            continue;
        }
        let notification = match Notification::decode(value.as_slice()) {
            Ok(notification) => notification,
            Err(e) => {
                report.mismatch(
                    "undecodable",
                    json!({ "key": keys::readable(key), "why": e.to_string() }),
                );
                continue;
            }
        };
        let debit = Debit {
            user: notification.user.clone(),
            order_id: notification.order_id.clone(),
        };
        if let Some(refund_id) = &notification.refund_id {
            report.refund_notifications += 1;
            let credit = Credit {
                debit,
                refund_id: refund_id.clone(),
            };
            let credited = credits.get(&credit);
            if credited != Some(&notification.sum) {
                report.mismatch(
                    "notified as refunded without its refund",
                    json!({ "user": notification.user, "order_id": notification.order_id,
                            "refund_id": refund_id, "sum": notification.sum, "credited": credited }),
                );
            }
            notified_refunds.insert(credit);
            continue;
        }
        let debited = debits.get(&debit);
        if notification.paid {
            report.paid_notifications += 1;
            if debited != Some(&notification.sum) {
                report.mismatch(
                    "notified as paid without its debit",
                    json!({ "user": notification.user, "order_id": notification.order_id,
                            "sum": notification.sum, "debited": debited }),
                );
            }
            notified_paid.insert(debit);
        } else {
            report.refused_notifications += 1;
            if debited.is_some() {
                report.mismatch(
                    "notified as refused but debited",
                    json!({ "user": notification.user, "order_id": notification.order_id }),
                );
            }
        }
    }
    for debit in debits.keys() {
        if !notified_paid.contains(debit) && !dead_lettered.contains(&debit.order_id) {
            report.mismatch(
                "debited but never notified nor dead-lettered",
                json!({ "user": debit.user, "order_id": debit.order_id }),
            );
        }
    }
    for credit in credits.keys() {
        if !notified_refunds.contains(credit) && !dead_lettered.contains(&credit.debit.order_id) {
            report.mismatch(
                "refunded but never notified nor dead-lettered",
                json!({ "user": credit.debit.user, "order_id": credit.debit.order_id,
                        "refund_id": credit.refund_id }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use orders_wire::proto::Settlement;

    use super::*;

    fn entry(number: u64, kind: EntryKind, amount: u64, order: &str, after: u64) -> LedgerEntry {
        LedgerEntry {
            number,
            kind: kind.into(),
            amount,
            order_id: order.to_string(),
            balance_after: after,
            at_ms: number,
            ..Default::default()
        }
    }

    fn chunk(entries: Vec<LedgerEntry>) -> Vec<u8> {
        LedgerChunk { entries }.encode_to_vec()
    }

    /// Pavel: a deposit of 100 (entry 1, moved out to a chunk) and a payment of 10 for order o-1
    /// (held), notified as paid; the refusal of order o-2 (held), notified as refused.
    fn books() -> Books {
        let account = StoredAccount {
            user: "Pavel".into(),
            balance: 90,
            ledger_length: 2,
            recent_entries: vec![entry(2, EntryKind::Payment, 10, "o-1", 90)],
            settlements: vec![Settlement {
                order_id: "o-2".into(),
                sum: 500,
                outcome: PaymentOutcome::InsufficientFunds.into(),
                balance: 90,
                ..Default::default()
            }],
            ..Default::default()
        };
        let billing = Bucket::from([
            ("account/Pavel".to_string(), account.encode_to_vec()),
            (
                "ledger/Pavel/00000000000000000001".to_string(),
                chunk(vec![entry(1, EntryKind::Deposit, 100, "", 100)]),
            ),
        ]);
        let notify = Bucket::from([
            (
                keys::of(&["notification", "Pavel", "o-1"]),
                notification("o-1", 10, true).encode_to_vec(),
            ),
            (
                keys::of(&["notification", "Pavel", "o-2"]),
                notification("o-2", 500, false).encode_to_vec(),
            ),
        ]);
        Books { billing, notify }
    }

    fn notification(order: &str, sum: u64, paid: bool) -> Notification {
        Notification {
            order_id: order.into(),
            user: "Pavel".into(),
            sum,
            paid,
            ..Default::default()
        }
    }

    /// billing's and notify's buckets, as the audit reads them.
    struct Books {
        billing: Bucket,
        notify: Bucket,
    }

    impl Books {
        fn audit(&self) -> Report {
            audit(&self.billing, &self.notify)
        }

        /// What the audit found, in words.
        fn mismatches(&self) -> Vec<String> {
            self.audit()
                .mismatches
                .iter()
                .map(|m| m["mismatch"].as_str().unwrap().to_string())
                .collect()
        }

        /// Changes Pavel's account.
        fn edit_account(&mut self, edit: impl FnOnce(&mut StoredAccount)) {
            let value = self.billing.get_mut("account/Pavel").unwrap();
            let mut account = StoredAccount::decode(value.as_slice()).unwrap();
            edit(&mut account);
            *value = account.encode_to_vec();
        }
    }

    #[test]
    fn books_that_add_up_pass_with_what_was_checked() {
        let books = books();
        let report = books.audit();
        assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
        assert_eq!(
            report.summary(),
            json!({ "accounts": 1, "entries": 2, "debits": 1, "refunds": 0,
                    "paid_notifications": 1, "refused_notifications": 1,
                    "refund_notifications": 0, "dead_letters": 0, "mismatches": 0 })
        );
    }

    #[test]
    fn a_balance_that_differs_from_its_ledger_is_found() {
        let mut books = books();
        books.edit_account(|account| account.balance = 95);
        assert_eq!(books.mismatches(), ["balance differs from its ledger"]);
    }

    #[test]
    fn a_missing_entry_is_a_gap() {
        let mut books = books();
        books.billing.remove("ledger/Pavel/00000000000000000001");
        assert_eq!(books.mismatches(), ["ledger has a gap"]);
    }

    #[test]
    fn an_entry_that_does_not_follow_from_the_one_before_is_found() {
        let mut books = books();
        books.edit_account(|account| {
            account.recent_entries[0].balance_after = 91;
            account.balance = 91;
        });
        assert_eq!(
            books.mismatches(),
            ["entry does not follow from the one before"]
        );
    }

    #[test]
    fn an_order_debited_twice_is_found() {
        let mut books = books();
        books.edit_account(|account| {
            account
                .recent_entries
                .push(entry(3, EntryKind::Payment, 10, "o-1", 80));
            account.ledger_length = 3;
            account.balance = 80;
        });
        assert_eq!(books.mismatches(), ["order debited twice"]);
    }

    #[test]
    fn a_paid_settlement_without_its_debit_is_found() {
        let mut books = books();
        let paid = PaymentResult {
            order_id: "o-3".into(),
            user: "Pavel".into(),
            sum: 10,
            outcome: PaymentOutcome::Paid.into(),
            ..Default::default()
        };
        books
            .billing
            .insert("payment/o-3".into(), paid.encode_to_vec());
        books.notify.insert(
            keys::of(&["notification", "Pavel", "o-3"]),
            notification("o-3", 10, true).encode_to_vec(),
        );
        assert_eq!(
            books.mismatches(),
            [
                "paid without its debit",
                "notified as paid without its debit"
            ]
        );
    }

    #[test]
    fn a_debit_told_as_refused_or_not_told_at_all_is_found_unless_dead_lettered() {
        let mut books = books();
        let key = keys::of(&["notification", "Pavel", "o-1"]);
        books
            .notify
            .insert(key.clone(), notification("o-1", 10, false).encode_to_vec());
        assert_eq!(
            books.mismatches(),
            [
                "notified as refused but debited",
                "debited but never notified nor dead-lettered"
            ]
        );
        books.notify.remove(&key);
        assert_eq!(
            books.mismatches(),
            ["debited but never notified nor dead-lettered"]
        );
        let letter = DeadLetter {
            consumer: "notify".into(),
            order_id: "o-1".into(),
            ..Default::default()
        };
        books.notify.insert(
            keys::of(&["deadletter", "notify", "ab"]),
            letter.encode_to_vec(),
        );
        assert!(books.mismatches().is_empty());
    }

    #[test]
    fn an_entry_record_that_differs_from_the_one_the_account_holds_is_found() {
        let mut books = books();
        books.billing.insert(
            "ledger/Pavel/00000000000000000002".to_string(),
            chunk(vec![entry(2, EntryKind::Payment, 11, "o-1", 89)]),
        );
        assert_eq!(
            books.mismatches(),
            ["entry record differs from the account's"]
        );
    }

    /// `books()` and a refund of `amount` of order o-1 (entry 3), notified.
    fn refunded(amount: u64, refund_id: &str) -> Books {
        let mut books = books();
        books.edit_account(|account| {
            let mut refund = entry(3, EntryKind::Refund, amount, "o-1", 90 + amount);
            refund.refund_id = refund_id.into();
            refund.refund_number = 1;
            account.recent_entries.push(refund);
            account.ledger_length = 3;
            account.balance = 90 + amount;
        });
        let notification = Notification {
            refund_id: Some(refund_id.into()),
            ..notification("o-1", amount, false)
        };
        books.notify.insert(
            keys::of(&["notification", "Pavel", "o-1", refund_id]),
            notification.encode_to_vec(),
        );
        books
    }

    #[test]
    fn a_refund_within_its_debit_and_notified_adds_up() {
        let books = refunded(10, "r-1");
        let report = books.audit();
        assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
        assert_eq!(
            (
                report.refunds,
                report.refund_notifications,
                report.refused_notifications
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_refund_of_more_than_was_paid_or_of_an_order_never_debited_is_found() {
        let books = refunded(11, "r-1");
        assert_eq!(books.mismatches(), ["refunded more than was paid"]);
        let mut books = refunded(10, "r-1");
        books.edit_account(|account| {
            account.recent_entries[1].order_id = "o-9".into();
        });
        assert_eq!(
            books.mismatches(),
            [
                "refund of an order not debited",
                "notified as refunded without its refund",
                "refunded but never notified nor dead-lettered"
            ]
        );
    }

    #[test]
    fn a_refund_applied_twice_or_never_notified_is_found() {
        let mut books = refunded(4, "r-1");
        books.edit_account(|account| {
            let mut twice = account.recent_entries[1].clone();
            twice.number = 4;
            twice.balance_after = 98;
            account.recent_entries.push(twice);
            account.ledger_length = 4;
            account.balance = 98;
        });
        assert_eq!(books.mismatches(), ["refund applied twice"]);
        let mut books = refunded(10, "r-1");
        books.notify.retain(|key, _| !key.ends_with("r-1"));
        assert_eq!(
            books.mismatches(),
            ["refunded but never notified nor dead-lettered"]
        );
    }

    #[test]
    fn a_refund_record_that_is_not_its_entry_is_found() {
        let mut books = refunded(10, "r-1");
        let mut forged = entry(3, EntryKind::Refund, 10, "o-1", 100);
        forged.refund_id = "r-2".into();
        forged.refund_number = 1;
        books
            .billing
            .insert("refund/o-1/01".into(), forged.encode_to_vec());
        assert_eq!(books.mismatches(), ["refund record differs from its entry"]);
        books
            .billing
            .insert("refund/o-7/01".into(), forged.encode_to_vec());
        assert_eq!(
            books.mismatches(),
            [
                "refund record differs from its entry",
                "refund record of no refund entry"
            ]
        );
    }
}
