#!/usr/bin/env python3
"""The durable consumers of a lattice's NATS, from its monitoring endpoint (/jsz), which costs no
NATS messages and needs no credentials (it listens on 127.0.0.1 only). MONITOR_URL may list a
cluster's servers, comma-separated: each stream and consumer is then reported by its leader, the
one server that knows who pulls from it, and a server that is down is skipped.

  consumers.py MONITOR_URL show               connections, streams, each durable consumer's backlog
  consumers.py MONITOR_URL drained            exit 0 when no durable consumer has work waiting or in hand
  consumers.py MONITOR_URL pulling NAME...    exit 0 when each named consumer has a pull waiting
"""
import json
import sys
import urllib.request


def get(monitor, path):
    return json.load(urllib.request.urlopen(monitor + path, timeout=5))


def streams(monitors):
    found, leading = {}, {}
    for monitor in monitors.split(","):
        try:
            server = get(monitor, "/varz")["server_name"]
            report = get(monitor, "/jsz?accounts=true&streams=true&consumers=true&config=true")
        except OSError:
            continue
        for account in report.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                # A stream's consumers have leaders of their own.
                consumers = {c["name"]: c for c in stream.get("consumer_detail") or []}
                kept = found.setdefault(stream["name"], dict(stream, consumer_detail={}))
                if led_by(stream, server):
                    kept.update(stream, consumer_detail=kept["consumer_detail"])
                for name, consumer in consumers.items():
                    if name not in kept["consumer_detail"] or led_by(consumer, server):
                        kept["consumer_detail"][name] = consumer
    for stream in found.values():
        yield dict(stream, consumer_detail=list(stream["consumer_detail"].values()))


def connections(monitors):
    total = 0
    for monitor in monitors.split(","):
        try:
            total += get(monitor, "/connz")["num_connections"]
        except OSError:
            continue
    return total


def led_by(asset, server):
    # A single server's assets carry no cluster information: that server leads them all.
    return (asset.get("cluster") or {}).get("leader", server) == server


def durable(stream):
    # Key-value watchers and other ephemeral readers have no durable name.
    return [c for c in stream.get("consumer_detail") or [] if c.get("config", {}).get("durable_name")]


def main(monitor, command, *names):
    if command == "show":
        print(f"NATS: {connections(monitor)} connections")
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
