//! Fuzzing the request parsers and message decoders: property tests over arbitrary input, plus the
//! hostile-body corpus in `tests/corpus/` (one body per file, kept in the repo as seeds).

use orders_domain::api::{parse_json, query_param, ApiError, RequestError};
use orders_domain::memory;
use orders_domain::{Amount, InvalidValue, OrderId, UserName};
use orders_wire::proto::{CreateOrderRequest, DepositCashRequest, OrderPlaced, PaymentResult};
use proptest::prelude::*;
use prost::Message as _;

/// What a request body must become: parsed, or refused with a 4xx.
fn parse_order(body: &[u8]) -> Result<(UserName, Amount), u16> {
    let request: CreateOrderRequest = parse_json(body).map_err(|e: RequestError| e.status())?;
    let user = UserName::parse(&request.user).map_err(|e| e.status())?;
    let sum = Amount::parse(request.sum).map_err(|e| e.status())?;
    Ok((user, sum))
}

/// Found at run time (cargo sets the variable for tests): a test binary may be reused by another
/// checkout sharing the target directory.
fn corpus_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("tests/corpus")
}

#[test]
fn every_body_in_the_corpus_is_parsed_or_refused_with_a_4xx() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        match parse_order(&body) {
            Ok((user, sum)) => {
                assert!(
                    !user.as_str().is_empty() && sum.get() > 0,
                    "{}",
                    path.display()
                );
            }
            Err(status) => assert!((400..500).contains(&status), "{}: {status}", path.display()),
        }
        seen += 1;
    }
    assert!(seen >= 20, "the corpus is there");
}

#[test]
fn corpus_bodies_that_must_be_refused_are_refused() {
    for name in [
        "array",
        "fraction-sum",
        "huge-sum",
        "negative-sum",
        "zero-sum",
        "control-chars-user",
        "long-user",
        "lone-surrogate",
    ] {
        let body = std::fs::read(corpus_dir().join(format!("{name}.json"))).unwrap();
        assert!(parse_order(&body).is_err(), "{name} was accepted");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_a_parser(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_order(&body);
        let _ = parse_json::<DepositCashRequest>(&body);
        let _ = OrderPlaced::decode(body.as_slice());
        let _ = PaymentResult::decode(body.as_slice());
    }

    #[test]
    fn any_user_and_sum_is_accepted_exactly_when_valid(user in "\\PC{0,80}|[ \\t\\x00-\\x1f]{0,3}", sum in any::<i64>()) {
        let body = serde_json::json!({ "user": user, "sum": sum }).to_string();
        let trimmed = user.trim();
        let valid_user = !trimmed.is_empty() && trimmed.chars().count() <= 64 && !trimmed.chars().any(char::is_control);
        let valid_sum = (1..=1_000_000_000).contains(&sum);
        match parse_order(body.as_bytes()) {
            Ok((parsed_user, parsed_sum)) => {
                prop_assert!(valid_user && valid_sum);
                prop_assert_eq!(parsed_user.as_str(), trimmed);
                prop_assert_eq!(parsed_sum.get(), u64::try_from(sum).unwrap());
            }
            Err(status) => {
                prop_assert!(!(valid_user && valid_sum));
                prop_assert_eq!(status, 422);
            }
        }
    }

    #[test]
    fn broker_messages_survive_a_round_trip(order_id in "[a-z0-9-]{1,64}", user in "\\PC{1,64}", sum in any::<u64>(), at in any::<u64>(), key_sha256 in proptest::collection::vec(any::<u8>(), 32)) {
        let placed = OrderPlaced { order_id, user, sum, placed_at_ms: at, key_sha256 };
        prop_assert_eq!(OrderPlaced::decode(placed.encode_to_vec().as_slice()).unwrap(), placed);
    }

    #[test]
    fn order_ids_are_accepted_exactly_when_well_formed(raw in "\\PC{0,70}") {
        let well_formed = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        prop_assert_eq!(OrderId::parse(&raw).is_ok(), well_formed);
        if !well_formed {
            prop_assert_eq!(OrderId::parse(&raw), Err(InvalidValue::MalformedOrderId));
        }
    }

    #[test]
    fn query_strings_never_panic_and_find_encoded_values(value in "\\PC{0,40}", noise in "[a-z=&%+]{0,20}") {
        let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
        let query = format!("{noise}&user={encoded}");
        let _ = query_param(&noise, "user");
        let found = query_param(&query, "user");
        // `noise` may itself hold a `user=` pair, which comes first; otherwise ours is found intact.
        if !noise.split('&').any(|p| p.split('=').next() == Some("user")) {
            prop_assert_eq!(found.as_deref(), Some(value.as_str()));
        }
    }

    #[test]
    fn any_authorization_header_is_refused_cleanly_unless_it_carries_an_issued_key(header in "\\PC{0,600}") {
        let refused = memory::authenticator().caller(Some(&header)).unwrap_err();
        prop_assert_eq!(refused.status(), 401);
    }

    #[test]
    fn an_issued_key_names_its_user_and_any_one_changed_character_breaks_it(
        user in "\\PC{1,64}", nonce in any::<[u8; 16]>(), at in any::<proptest::sample::Index>(), with in "[A-Za-z0-9_.-]",
    ) {
        let Ok(user) = UserName::parse(&user) else { return Ok(()) };
        let auth = memory::authenticator();
        let issued = auth.keys.issue(&user, nonce);
        let caller = auth.caller(Some(&format!("Bearer {}", issued.key))).unwrap();
        prop_assert!(caller.require_user(&user).is_ok());
        let position = at.index(issued.key.len());
        prop_assume!(issued.key.is_char_boundary(position) && &issued.key[position..=position] != with.as_str());
        let mut changed = issued.key.clone();
        changed.replace_range(position..=position, &with);
        let refused = auth.caller(Some(&format!("Bearer {changed}")));
        prop_assert!(refused.is_err(), "{} still authenticates", changed);
    }
}
