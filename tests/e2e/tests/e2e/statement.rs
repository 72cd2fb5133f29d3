//! `GET /Statement`: every movement of an account's money, newest first, page by page.

use orders_e2e::{encode, lattice_test, Lattice};
use serde_json::{json, Value};

/// Every entry of `user`'s statement, newest first, read `limit` at a time with the user's key;
/// each page's opening and closing balances are checked against its entries on the way.
async fn statement(lattice: &Lattice, user: &str, limit: u32) -> Vec<Value> {
    let path = format!("/Statement?user={}&limit={limit}", encode(user));
    lattice
        .every_page_checked(&path, "entries", &lattice.key(user), |page| {
            let entries = page["entries"].as_array().unwrap();
            let (newest, oldest) = (&entries[0], &entries[entries.len() - 1]);
            assert_eq!(page["closing_balance"], newest["balance_after"], "{page}");
            let (after, amount) = (oldest["balance_after"].as_u64(), oldest["amount"].as_u64());
            let before = match oldest["kind"].as_str() {
                Some("deposit" | "refund") => after.unwrap() - amount.unwrap(),
                _ => after.unwrap() + amount.unwrap(),
            };
            assert_eq!(page["opening_balance"], json!(before), "{page}");
        })
        .await
}

#[lattice_test]
async fn a_statement_lists_every_deposit_and_payment_newest_first_page_by_page(lattice: Lattice) {
    let user = lattice.new_user("Statement", 100).await;
    let paid = lattice.settled_orders(&user, 5, 10).await;
    let refused = lattice.order(&user, 1_000).await;
    assert_eq!(
        lattice.await_settled(&user, &refused).await["state"],
        "refused"
    );
    let deposited = lattice.deposit(&user, 7).await;
    assert_eq!(deposited.status, 200, "{deposited:?}");

    let entries = statement(&lattice, &user, 2).await;
    let movements: Vec<(u64, &str, u64, u64)> = entries
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_u64().unwrap();
            let kind = e["kind"].as_str().unwrap();
            (
                field("entry"),
                kind,
                field("amount"),
                field("balance_after"),
            )
        })
        .collect();
    assert_eq!(
        movements,
        [
            (7, "deposit", 7, 57),
            (6, "payment", 10, 50),
            (5, "payment", 10, 60),
            (4, "payment", 10, 70),
            (3, "payment", 10, 80),
            (2, "payment", 10, 90),
            (1, "deposit", 100, 100),
        ],
        "the refused order moved nothing"
    );
    let paid_orders: Vec<&str> = entries[1..6]
        .iter()
        .rev()
        .map(|e| e["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(paid_orders, paid);
    assert_eq!(entries[0]["order_id"], Value::Null);
    assert_eq!(lattice.balance(&user).await, 57);
}

#[lattice_test]
async fn a_statement_page_past_the_oldest_entry_is_empty_and_a_bad_cursor_is_422(lattice: Lattice) {
    let user = lattice.new_user("StatementEnd", 5).await;
    let path = |query: &str| format!("/Statement?user={}&{query}", encode(&user));
    let last = lattice.get_as(&user, &path("after=1")).await;
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(
        (&last.body["entries"], &last.body["next_after"]),
        (&json!([]), &Value::Null)
    );
    for query in ["after=-1", "after=x", "limit=0", "limit=1001"] {
        let refused = lattice.get_as(&user, &path(query)).await;
        assert_eq!(refused.status, 422, "{query}: {refused:?}");
    }
}
