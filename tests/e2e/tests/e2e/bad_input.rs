//! Bad input gets a clear JSON error with the right 4xx status, and changes nothing.

use orders_e2e::{lattice_test, Lattice};
use serde_json::json;

#[lattice_test]
async fn malformed_json_is_400_and_changes_no_balance(lattice: Lattice) {
    let user = lattice.new_user("Malformed", 100).await;
    for body in ["", "{", "not json", "{\"user\": }", "\u{0}"] {
        for path in ["/CreateUser", "/DepositCash", "/Order"] {
            let answer = lattice.post_raw_as(&user, path, body.to_string()).await;
            assert_eq!(
                (answer.status, answer.error_code()),
                (400, "malformed_json"),
                "{path} {body:?}"
            );
            assert_eq!(answer.body["status"], json!(false));
            assert!(answer.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }
    assert_eq!(lattice.balance(&user).await, 100);
}

#[lattice_test]
async fn json_with_wrong_types_is_400(lattice: Lattice) {
    let user = lattice.new_user("WrongType", 100).await;
    for body in [
        json!({ "user": user }),
        json!({ "user": user, "sum": "10" }),
        json!({ "user": user, "sum": 10.5 }),
        json!({ "user": user, "sum": 1e30 }),
        json!({ "user": 42, "sum": 10 }),
        json!({ "user": null, "sum": 10 }),
        json!([user, 10]),
    ] {
        for path in ["/DepositCash", "/Order"] {
            let answer = lattice.post_as(&user, path, body.clone()).await;
            assert_eq!(
                (answer.status, answer.error_code()),
                (400, "wrong_type"),
                "{path} {body}"
            );
        }
    }
    let huge = lattice
        .post_raw_as(
            &user,
            "/DepositCash",
            format!(r#"{{"user":"{user}","sum":99999999999999999999999}}"#),
        )
        .await;
    assert_eq!(huge.status, 400);
    assert_eq!(lattice.balance(&user).await, 100);
}

#[lattice_test]
async fn invalid_values_are_422_and_change_nothing(lattice: Lattice) {
    let user = lattice.new_user("Invalid", 100).await;
    for (sum, code) in [
        (0, "invalid_sum"),
        (-5, "invalid_sum"),
        (1_000_000_001, "invalid_sum"),
    ] {
        for path in ["/DepositCash", "/Order"] {
            let answer = lattice
                .post_as(&user, path, json!({ "user": user, "sum": sum }))
                .await;
            assert_eq!(
                (answer.status, answer.error_code()),
                (422, code),
                "{path} {sum}"
            );
        }
    }
    for name in ["", "   ", &"x".repeat(65), "tab\there"] {
        let answer = lattice.post("/CreateUser", json!({ "user": name })).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (422, "invalid_user"),
            "{name:?}"
        );
        let answer = lattice
            .post_as(&user, "/Order", json!({ "user": name, "sum": 10 }))
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (422, "invalid_user"),
            "{name:?}"
        );
    }
    assert_eq!(lattice.balance(&user).await, 100);
    assert!(
        lattice.notifications(&user).await.is_empty(),
        "no order was published"
    );
}

#[lattice_test]
async fn a_body_over_16_kib_is_413(lattice: Lattice) {
    let answer = lattice
        .post_raw(
            "/CreateUser",
            format!(r#"{{"user":"{}"}}"#, "x".repeat(20_000)),
        )
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (413, "body_too_large")
    );
}

#[lattice_test]
async fn a_wrong_method_is_405_naming_the_allowed_one(lattice: Lattice) {
    for (method, path, allowed) in [
        (reqwest::Method::GET, "/CreateUser", "POST"),
        (reqwest::Method::GET, "/DepositCash", "POST"),
        (reqwest::Method::GET, "/Order", "POST"),
        (reqwest::Method::POST, "/List", "GET"),
        (reqwest::Method::DELETE, "/Balance", "GET"),
        (reqwest::Method::TRACE, "/OrderStatus", "GET"),
    ] {
        let answer = lattice.request(method.clone(), path).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (405, "method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(answer.headers["allow"], allowed, "{method} {path}");
    }
}

#[lattice_test]
async fn balance_without_a_user_is_400(lattice: Lattice) {
    let answer = lattice.get_as_admin("/Balance").await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (400, "missing_parameter")
    );
}

#[lattice_test]
async fn a_page_that_cannot_be_served_is_422_naming_the_parameter(lattice: Lattice) {
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=many", "invalid_limit"),
        ("after=-1", "invalid_cursor"),
        ("after=", "invalid_cursor"),
    ] {
        let answer = lattice.get_as_admin(&format!("/List?{query}")).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (422, code),
            "{query}: {answer:?}"
        );
        assert!(answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[lattice_test]
async fn an_unknown_path_is_a_json_404(lattice: Lattice) {
    for path in ["/NoSuchThing", "/order", "/Order/extra"] {
        let answer = lattice.get(path).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (404, "unknown_path"),
            "{path}: {answer:?}"
        );
        assert_eq!(answer.body["status"], false);
    }
}

#[lattice_test]
async fn list_with_a_json_body_is_answered_like_the_seeds_postman_request(lattice: Lattice) {
    let user = lattice.new_user("Postman", 10).await;
    lattice.order(&user, 10).await;
    lattice.await_notifications(&user, 1).await;
    let client = reqwest::Client::new();
    // The newest notifications are on the last page of everyone's: this user's are asked for.
    let response = client
        .get(format!(
            "{}/List?user={}",
            lattice.base_url,
            orders_e2e::encode(&user)
        ))
        .bearer_auth(&lattice.admin_token)
        .header("content-type", "application/json")
        .body(json!({ "user": user, "sum": 10 }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], json!(true));
    assert!(body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["user"] == json!(user)));
}
