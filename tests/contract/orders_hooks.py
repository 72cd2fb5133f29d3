"""schemathesis hooks for the contract test of openapi/openapi.yaml against a running lattice
(`make test` runs it; docs/testing.md).

schemathesis sends every request with one user's API key (ORDERS_FUZZ_USER). Its generated bodies
and queries name random users, which authorization refuses (403) before any rule of the services
runs, so half of those that fit the schema (chosen by a hash of the value, so a failure replays)
are made to name that user instead: deposits, balances and orders then reach billing's and order's own rules. RotateKey
keeps its generated names, since rotating the run's own key would lock it out.

The check `refused_input_changes_nothing` makes "bad input is never stored or published" part of
the contract: before each call the hooks wait until billing and notify have settled everything on
the broker and note the messages stored in ORDERS and REFUNDS and the account the request names (asked with the
admin token); after a refused request (4xx) the same must be found.
"""
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import schemathesis

BASE_URL = os.environ["ORDERS_BASE_URL"]
MONITOR_URL = os.environ["ORDERS_MONITOR_URL"]
ADMIN_TOKEN = os.environ["ORDERS_ADMIN_TOKEN"]
FUZZ_USER = os.environ["ORDERS_FUZZ_USER"]
NAMES_THE_FUZZ_USER = {"/DepositCash", "/Order", "/Refund", "/Balance", "/Statement", "/List"}


def half(value):
    return zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode()) % 2 == 0


@schemathesis.hook
def map_case(context, case):
    # Only data that fits the schema: a request generated to violate it must stay as generated.
    meta = case.meta
    if meta is None or meta.generation.mode != "positive" or case.operation.path not in NAMES_THE_FUZZ_USER:
        return case
    if isinstance(case.body, dict) and half(case.body):
        case.body = {**case.body, "user": FUZZ_USER}
    if isinstance(case.query, dict) and "user" in case.query and half(case.query):
        case.query = {**case.query, "user": FUZZ_USER}
    return case


def get_json(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def streams():
    _, report = get_json(f"{MONITOR_URL}/jsz?accounts=true&streams=true&consumers=true")
    for account in report.get("account_details") or []:
        yield from account.get("stream_detail") or []


def settled_broker():
    """The orders stored in ORDERS and the refund requests in REFUNDS, once no durable consumer has
    work left (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        details = list(streams())
        busy = sum(c["num_pending"] + c["num_ack_pending"] for s in details for c in s.get("consumer_detail") or [])
        if busy == 0 or time.monotonic() > deadline:
            return {s["name"]: s["state"]["messages"] for s in details if s["name"] in ("ORDERS", "REFUNDS")}
        time.sleep(0.02)


def named_user(case):
    body = case.body if isinstance(case.body, dict) else {}
    user = body.get("user", (case.query or {}).get("user"))
    return user if isinstance(user, str) else None


def snapshot(case):
    user = named_user(case)
    # The broker settled first, the account read after: an order accepted before this call may
    # still be in billing's hands, and a balance read before it is paid would differ from the one
    # read after this call for no fault of this call.
    stored = settled_broker()
    account = None
    if user is not None:
        account = account_of(user)
    return {"messages stored": stored, f"account of {user!r}": account}


def account_of(user):
    """The status and balance of `user`'s account, asked with the admin token. The admin token has
    a rate limit of its own, which these reads and the fuzzer's pace can reach: a 429 says nothing
    of the account, so it is asked again (3 s at most)."""
    deadline = time.monotonic() + 3
    while True:
        status, body = get_json(f"{BASE_URL}/Balance?user={urllib.parse.quote(user)}", ADMIN_TOKEN)
        if status != 429 or time.monotonic() > deadline:
            return (status, body.get("balance") if isinstance(body, dict) else None)
        time.sleep(0.1)


before = {}


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() == "POST":
        before[id(case)] = snapshot(case)


@schemathesis.check
def refused_input_changes_nothing(ctx, response, case):
    if case.method.upper() != "POST" or not 400 <= response.status_code < 500 or id(case) not in before:
        return None
    after = snapshot(case)
    if after != before[id(case)]:
        raise AssertionError(
            f"{case.method} {case.path} was refused ({response.status_code}) but changed state: "
            f"before {before[id(case)]}, after {after}"
        )
    return None
