#!/usr/bin/env python3
"""Sustained syslog rate of `mutt ingest`'s native listeners, over UDP and over TCP.

Starts nothing: point it at an ingest started with MUTT_SYSLOG_UDP_LISTEN and
MUTT_SYSLOG_TCP_LISTEN (see BENCHMARKS.md for the whole command). For each transport it
sends sample-like RFC 3164 lines as fast as one sender can for --seconds, then reads the
ingest's /metrics: events appended to the stream per second (what counts), and what was
dropped on the way (MUTT's own drops and the kernel's receive-buffer drops for UDP; TCP
drops nothing, it slows the sender instead).

Usage: syslog-rate.py --udp 127.0.0.1:5514 --tcp 127.0.0.1:5601 --ops http://127.0.0.1:9464
"""
import argparse
import re
import socket
import time
import urllib.request

LINES = [
    "<187>Dec  7 10:00:00 core-router-01 netdev: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/0/{i}, changed state to down",
    "<186>Dec  7 10:00:00 edge-fw-02 asa: %ASA-2-106001: Inbound TCP connection denied from 203.0.113.{i}/443 to 10.0.0.5/51234",
    "<190>Dec  7 10:00:00 dhcp-server-15 dhcpd[812]: DHCPACK on 10.1.2.{i} to 00:1b:54:aa:bb:cc via eth0",
]


def metric(ops, name, labels):
    text = urllib.request.urlopen(f"{ops}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'"{v}"' in line for v in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def lines(n):
    return [LINES[i % len(LINES)].format(i=i % 250).encode() for i in range(n)]


def run_udp(target, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = lines(1000)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for b in batch:
            sock.sendto(b, target)
        sent += len(batch)
    return sent


def run_tcp(target, seconds):
    sock = socket.create_connection(target)
    chunk = b"".join(b"%d %s" % (len(l), l) for l in lines(5000))
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.sendall(chunk)
        sent += 5000
    sock.close()
    return sent


def measure(name, source, run, target, ops, seconds):
    before = metric(ops, "mutt_ingest_events_total", [source, "accepted"])
    t0 = time.monotonic()
    sent = run(target, seconds)
    # Let the listener finish what it read.
    last, stable = -1.0, 0
    while stable < 3:
        time.sleep(0.5)
        now = metric(ops, "mutt_ingest_events_total", [source, "accepted"])
        stable = stable + 1 if now == last else 0
        last = now
    elapsed = time.monotonic() - t0 - 1.5
    appended = last - before
    dropped = metric(ops, "mutt_ingest_dropped_events_total", [source])
    kernel = metric(ops, "mutt_ingest_udp_kernel_drops_total", [source])
    print(f"{name}: sent {sent} in {seconds}s, appended {appended:.0f} "
          f"({appended / elapsed:,.0f} events/s into the stream), "
          f"dropped by MUTT {dropped:.0f}, by the kernel {kernel:.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--udp")
    p.add_argument("--tcp")
    p.add_argument("--ops", required=True)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args()
    if a.udp:
        measure("udp", "syslog_udp", run_udp, addr(a.udp), a.ops, a.seconds)
    if a.tcp:
        measure("tcp", "syslog_tcp", run_tcp, addr(a.tcp), a.ops, a.seconds)


if __name__ == "__main__":
    main()
