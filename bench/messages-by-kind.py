#!/usr/bin/env python3
"""What the messages of N orders were, per order, from `orders-admin tail '>'` output (one JSON
object per line, with `subject` and `message`) on standard input. A subscriber of `>` sees each message once per
subject it crosses: a publication, and each delivery of it to a consumer.

    orders-admin tail '>' | bench/messages-by-kind.py N
"""
import collections
import json
import re
import sys

KINDS = [
    (r"default\.orders-([a-z]+)\.wrpc\.0\.0\.1\.[^/]+/(.+)$", "wRPC invocation -> {0}: {1}"),
    # Both a wRPC callee's handshake and a JetStream reply to a client's request inbox go to
    # `_INBOX.<client>.<id>`; the handshake is the empty one (told apart in `kind`).
    (r"_INBOX\.[^.]+\.[^.]+$", "JetStream reply to a request inbox: PubAck, key-value (_INBOX.<client>.<id>)"),
    (r"_INBOX\.[^.]+\.[^.]+\.params(\..+)?$", "wRPC parameters and their end (_INBOX.….params…)"),
    (r"_INBOX\.[^.]+\.[^.]+\.results(\..+)?$", "wRPC results and their end (_INBOX.….results…)"),
    (r"_INBOX\.[^.]+$", "JetStream reply: PubAck, API answer (_INBOX.<id>)"),
    (r"\$JS\.API\.([A-Z]+\.[A-Z]+)", "JetStream API request: {0}"),
    (r"\$JS\.ACK\.", "JetStream acknowledgement"),
    (r"\$KV\.([a-z]+)\.", "key-value write, bucket {0}"),
    (r"orders\.placed", "orders.placed.<partition>.<order id>: publication + 1 delivery"),
    (r"payments\.settled", "payments.settled: publication + 1 delivery"),
]


HANDSHAKE = "wRPC handshake reply (_INBOX.<client>.<call>, empty)"


def kind(message):
    subject = message["subject"]
    if re.match(r"_INBOX\.[^.]+\.[^.]+$", subject) and message["message"] == {"bytes": []}:
        return HANDSHAKE
    for pattern, name in KINDS:
        match = re.match(pattern, subject)
        if match:
            return name.format(*match.groups())
    return "other: " + ".".join(subject.split(".")[:2])


def main():
    orders = int(sys.argv[1])
    counts = collections.Counter(kind(json.loads(line)) for line in sys.stdin if line.strip())
    for name, count in counts.most_common():
        print(f"{count / orders:7.2f}  {name}")
    print(f"{sum(counts.values()) / orders:7.2f}  in all, per order")


if __name__ == "__main__":
    main()
