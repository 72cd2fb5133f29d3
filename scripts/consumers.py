#!/usr/bin/env python3
"""The durable consumers of a lattice's NATS, from its monitoring endpoint (/jsz), which costs no
NATS messages and needs no credentials (it listens on 127.0.0.1 only).

  consumers.py MONITOR_URL show               connections, streams, each durable consumer's backlog
  consumers.py MONITOR_URL drained            exit 0 when no durable consumer has work waiting or in hand
  consumers.py MONITOR_URL pulling NAME...    exit 0 when each named consumer has a pull waiting
"""
import json
import sys
import urllib.request


def get(monitor, path):
    return json.load(urllib.request.urlopen(monitor + path, timeout=5))


def streams(monitor):
    report = get(monitor, "/jsz?accounts=true&streams=true&consumers=true&config=true")
    for account in report.get("account_details") or []:
        yield from account.get("stream_detail") or []


def durable(stream):
    # Key-value watchers and other ephemeral readers have no durable name.
    return [c for c in stream.get("consumer_detail") or [] if c.get("config", {}).get("durable_name")]


def main(monitor, command, *names):
    if command == "show":
        print(f"NATS: {get(monitor, '/connz')['num_connections']} connections")
        for stream in sorted(streams(monitor), key=lambda s: s["name"]):
            print(f"  stream {stream['name']}: {stream['state']['messages']} messages")
            for c in durable(stream):
                print(f"    consumer {c['name']}: {c['num_pending']} waiting, "
                      f"{c['num_ack_pending']} being handled, {c['num_redelivered']} redelivered")
        return 0
    consumers = [c for stream in streams(monitor) for c in durable(stream)]
    if command == "drained":
        return 0 if consumers and all(c["num_pending"] + c["num_ack_pending"] == 0 for c in consumers) else 1
    if command == "pulling":
        pulling = {c["name"] for c in consumers if c.get("num_waiting", 0) > 0}
        if set(names) <= pulling:
            return 0
        print(f"durable consumers pulling: {sorted(pulling)}", file=sys.stderr)
        return 1
    sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
