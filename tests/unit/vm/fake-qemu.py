#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for qemu-system-x86_64 in the state machine tests: speaks QMP on the listening socket the
daemon passes as fd 3 and behaves as FAKE_QEMU_MODE says:
  normal   greet, answer query-status/query-cpus-fast/cont; system_powerdown → SHUTDOWN event, exit 0
  crash    exit 3 at once
  hang     never accept the QMP connection (start timeout)
  stubborn like normal, but ignore system_powerdown; exit 0 on SIGTERM
  die      like normal, but on "stop" send a SHUTDOWN event (host-signal) and exit 1 at once, never replying
  linger   like normal, but on "stop" exit 1 at once, never replying, while a forked child keeps the QMP
           connection open for 3 s (the exit is seen before any EOF)
Arguments are ignored except that "-smp N" sets the number of vCPUs reported."""
import json
import os
import signal
import socket
import sys
import time

mode = os.environ.get("FAKE_QEMU_MODE", "normal")
if mode == "crash":
    sys.exit(3)

vcpus = 1
if "-smp" in sys.argv:
    vcpus = int(sys.argv[sys.argv.index("-smp") + 1])

signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
listener = socket.socket(fileno=3)
if mode == "hang":
    while True:
        time.sleep(3600)

conn, _ = listener.accept()
f = conn.makefile("rwb")


def send(obj):
    f.write(json.dumps(obj).encode() + b"\r\n")
    f.flush()


send({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": []}})
for line in f:
    cmd = json.loads(line)
    name, cid = cmd.get("execute"), cmd.get("id")
    if name in ("qmp_capabilities", "cont"):
        send({"return": {}, "id": cid})
    elif name == "query-status":
        send({"return": {"status": "running", "singlestep": False, "running": True}, "id": cid})
    elif name == "query-cpus-fast":
        send({"return": [{"cpu-index": i, "thread-id": os.getpid(), "qom-path": "/machine/cpu[%d]" % i,
                          "target": "x86_64"} for i in range(vcpus)], "id": cid})
    elif name == "stop" and mode == "die":
        send({"timestamp": {"seconds": int(time.time()), "microseconds": 0}, "event": "SHUTDOWN",
              "data": {"guest": False, "reason": "host-signal"}})
        os._exit(1)
    elif name == "stop" and mode == "linger":
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        os._exit(1)
    elif name == "system_powerdown":
        send({"return": {}, "id": cid})
        if mode != "stubborn":
            send({"timestamp": {"seconds": int(time.time()), "microseconds": 0}, "event": "SHUTDOWN",
                  "data": {"guest": True, "reason": "guest-shutdown"}})
            sys.exit(0)
    else:
        send({"error": {"class": "CommandNotFound", "desc": "The command %s has not been found" % name}, "id": cid})
