#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for qemu-system-x86_64 whose guest agent is hostile (tests/integration/test_agent.py).

It speaks QMP on the listening socket memvisord passes as fd 3 (greeting, qmp_capabilities, query-status,
query-cpus-fast, query-chardev with the agent port open, quit) and plays the guest agent on the listening socket
of the agent port, passed as the fd named by "-chardev socket,id=qga,fd=N". FAKE_AGENT_MODE says how the agent
behaves, for every connection the daemon makes:
  good     answers guest-sync-delimited (0xFF first), guest-info and guest-ping like qemu-ga 7.2
  garbage  writes bytes that are not JSON (and no 0xFF) in answer to anything
  huge     answers the sync with 0xFF and then a string of FAKE_AGENT_BYTES (default 100 MiB) without end
  silent   accepts the connection and never writes
  stale    answers a sync with what a stale channel holds: an old reply, then a 0xFF and the reply to an older
           sync (another id), then the 0xFF and the right reply; otherwise like "good"
  deep     answers the sync with 0xFF and then 100000 nested arrays
Counts what it sent in FAKE_AGENT_LOG (a file), one line per connection: "<mode> <bytes>"."""
import json
import os
import signal
import socket
import sys
import threading
import time

mode = os.environ.get("FAKE_AGENT_MODE", "good")
log = os.environ.get("FAKE_AGENT_LOG")
huge = int(os.environ.get("FAKE_AGENT_BYTES", str(100 << 20)))
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))

agent_fd = None
for i, a in enumerate(sys.argv):
    if a == "-chardev" and sys.argv[i + 1].startswith("socket,id=qga,"):
        opts = dict(o.split("=", 1) for o in sys.argv[i + 1].split(",")[1:])
        agent_fd = int(opts["fd"])


def note(text):
    if log:
        with open(log, "a") as f:
            f.write(text + "\n")


def agent_reply(conn, cmd):
    name, args = cmd.get("execute"), cmd.get("arguments") or {}
    if name == "guest-sync-delimited":
        conn.sendall(b"\xff" + json.dumps({"return": args.get("id")}).encode() + b"\n")
    elif name == "guest-sync":
        conn.sendall(json.dumps({"return": args.get("id")}).encode() + b"\n")
    elif name == "guest-info":
        conn.sendall(json.dumps({"return": {"version": "7.2.99-fake", "supported_commands": [
            {"name": n, "enabled": True, "success-response": True}
            for n in ("guest-sync-delimited", "guest-sync", "guest-info", "guest-ping", "guest-get-osinfo",
                      "guest-get-vcpus", "guest-get-memory-blocks", "guest-get-memory-block-info",
                      "guest-file-open", "guest-file-read", "guest-file-close")]}}).encode() + b"\n")
    elif name == "guest-ping":
        conn.sendall(b'{"return": {}}\n')
    elif name == "guest-get-osinfo":
        conn.sendall(b'{"return": {"id": "fake", "kernel-release": "6.1.0-fake", "machine": "x86_64"}}\n')
    elif name == "guest-get-vcpus":
        conn.sendall(b'{"return": [{"logical-id": 0, "online": true, "can-offline": false}]}\n')
    elif name in ("guest-get-memory-blocks", "guest-get-memory-block-info", "guest-file-open"):
        conn.sendall(b'{"error": {"class": "GenericError", "desc": "not in this fake"}}\n')
    else:
        conn.sendall(json.dumps({"error": {"class": "CommandNotFound",
                                           "desc": "The command %s has not been found" % name}}).encode() + b"\n")


def serve_agent(conn):
    sent = 0
    f = conn.makefile("rb")
    try:
        if mode == "silent":
            while conn.recv(4096):
                pass
            return
        for line in f:
            line = line.strip().lstrip(b"\xff")
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            if mode == "garbage":
                junk = b"}{ not json \x00\x01 ]]" * 64
                conn.sendall(junk)
                sent += len(junk)
            elif mode == "huge":
                conn.sendall(b'\xff{"return": "')
                chunk = b"A" * 65536
                while sent < huge:
                    conn.sendall(chunk)
                    sent += len(chunk)
                time.sleep(30)
                return
            elif mode == "deep":
                conn.sendall(b"\xff" + b"[" * 100000)
                sent += 100001
                time.sleep(30)
                return
            elif mode == "stale" and cmd.get("execute") == "guest-sync-delimited":
                conn.sendall(b'{"return": {"version": "old"}}\n\xff{"return": 4242}\n')
                agent_reply(conn, cmd)
            else:
                agent_reply(conn, cmd)
    except OSError:
        pass
    finally:
        note("%s %d" % (mode, sent))
        conn.close()


def agent_loop():
    listener = socket.socket(fileno=agent_fd)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_agent, args=(conn,), daemon=True).start()


if agent_fd is not None:
    threading.Thread(target=agent_loop, daemon=True).start()

vcpus = int(sys.argv[sys.argv.index("-smp") + 1]) if "-smp" in sys.argv else 1
qmp, _ = socket.socket(fileno=3).accept()
qf = qmp.makefile("rwb")


def send(obj):
    qf.write(json.dumps(obj).encode() + b"\r\n")
    qf.flush()


send({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": []}})
for line in qf:
    cmd = json.loads(line)
    name, cid = cmd.get("execute"), cmd.get("id")
    if name in ("qmp_capabilities", "cont"):
        send({"return": {}, "id": cid})
    elif name == "query-status":
        send({"return": {"status": "running", "singlestep": False, "running": True}, "id": cid})
    elif name == "query-cpus-fast":
        send({"return": [{"cpu-index": i, "thread-id": os.getpid(), "qom-path": "/machine/cpu[%d]" % i,
                          "target": "x86_64"} for i in range(vcpus)], "id": cid})
    elif name == "query-chardev":
        send({"return": [{"label": "qga", "filename": "unix:", "frontend-open": agent_fd is not None},
                         {"label": "qmp", "filename": "unix:", "frontend-open": True}], "id": cid})
    elif name in ("quit", "system_powerdown"):
        send({"return": {}, "id": cid})
        send({"timestamp": {"seconds": int(time.time()), "microseconds": 0}, "event": "SHUTDOWN",
              "data": {"guest": False, "reason": "host-qmp-quit"}})
        os._exit(0)
    else:
        send({"error": {"class": "CommandNotFound", "desc": "fake QEMU: no %s" % name}, "id": cid})
os._exit(0)
