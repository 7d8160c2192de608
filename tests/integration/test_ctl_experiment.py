# SPDX-License-Identifier: LGPL-2.1-or-later
"""memvisorctl experiment run|list|show|export|cancel|delete (issue 15) against a fake varlink server that answers
the experiment methods of io.memvisor.Manager with canned replies shaped as the IDL says: a streamed
StartExperiment (three iteration replies, then the final one), GetExperimentResults in batches of 64, each of the
experiment errors. Checks the command line's output (table, progress on a terminal and off it, the provenance
summary), the CSV export read back with pandas, the JSON lines export, Ctrl-C sending CancelExperiment on a
second connection, and the exit codes of memvisorctl(1)."""

import fcntl
import json
import os
import pty
import select
import signal
import socketserver
import struct
import subprocess
import termios
import threading
import time

import pytest

M = "io.memvisor.Manager."
T0 = 1796000000000000   # a CLOCK_REALTIME in microseconds


def record(i, warm_up=False):
    """An iteration record as the runner writes it (experiment-record.md)."""
    return {
        "iteration": i,
        "warmUp": warm_up,
        "startedRealtimeUSec": T0 + i * 2000000,
        "durationUSec": 1200000 + i,
        "counters": {
            "time.provoke_usec": 81234 + i,
            "host.migrate.moved_bytes": 67108864 + 4096 * i,
            "host.vmstat.pgmigrate_success": 16384 + i,
            "host.residency.node1.delta_bytes": -4096 * i,
            "guest.tlb_shootdowns": 17 * i,
            "workload.per_thread.0.bytes_per_sec": 1.5e9 + 0.25 * i,
        },
        "unavailable": {
            "host.kvm_exit": "no /dev/kvm: the guest runs under TCG",
            "guest.vmstat.nr_tlb_remote_flush": 'kernel without "CONFIG_DEBUG_TLBFLUSH", so, absent',
        },
        "workload": {"elapsed_ns": 1000 + i},
    }


RECORDS = [record(i, warm_up=(i == 1)) for i in range(1, 131)]     # 130: batches of 64, 64 and 2

INFO = {
    "id": "exp-1", "guest": "web", "name": "pingpong", "operation": "migrate-pingpong", "state": "completed",
    "reason": None, "createdRealtimeUSec": T0, "endedRealtimeUSec": T0 + 300000000, "iterationsDone": 130,
    "iterationsPlanned": 130, "warmUp": 1, "bytes": 123456, "error": None,
}
INFO_RUNNING = dict(INFO, id="exp-run", guest="db", name=None, operation="none", state="running",
                    endedRealtimeUSec=None, iterationsDone=2, iterationsPlanned=10, warmUp=0)

PROVENANCE = {
    "memvisorVersion": "0.5",
    "kernel": {"release": "6.1.0-test-amd64", "cmdline": "quiet"},
    "cpu": {"vendor": "GenuineIntel", "modelName": "Fake Xeon 9000", "microcode": "0x2b"},
    "kvm": {"parameters": {"tdp_mmu": "Y", "nx_huge_pages": "N"},
            "vendor": {"kvm_intel": {"ept": "Y", "enable_pml": "Y"}},
            "device": {"usable": True, "apiVersion": 12}},
    "qemu": {"binary": "/usr/bin/qemu-system-x86_64", "version": "8.2.1"},
}

STATISTICS = [
    {"counter": "time.provoke_usec", "unit": "us", "n": 129, "median": 81300.0, "p5": 81240.0, "p95": 81360.0,
     "mean": 81300.0, "stddev": 37.4, "min": 81236.0, "max": 81364.0, "medianCILow": 81290.0,
     "medianCIHigh": 81310.0, "medianCICoverage": 0.953},
    {"counter": "host.migrate.moved_bytes", "unit": "bytes", "n": 129, "median": 67371008.0, "p5": 67137536.0,
     "p95": 67604480.0, "mean": 67371008.0, "stddev": 152000.0, "min": 67117056.0, "max": 67641344.0,
     "medianCILow": None, "medianCIHigh": None, "medianCICoverage": None},
    {"counter": "guest.tlb_shootdowns", "unit": "count", "n": 129, "median": 1122.0, "p5": 153.0, "p95": 2091.0,
     "mean": 1122.0, "stddev": 634.0, "min": 34.0, "max": 2210.0, "medianCILow": 1020.0, "medianCIHigh": 1224.0,
     "medianCICoverage": 0.95},
]
UNAVAILABLE = [
    {"counter": "host.kvm_exit", "reason": "no /dev/kvm: the guest runs under TCG", "iterations": 130},
    {"counter": "guest.vmstat.nr_tlb_remote_flush", "reason": "kernel without CONFIG_DEBUG_TLBFLUSH",
     "iterations": 130},
]


class Fake:
    """The fake memvisord: a threaded varlink server on a unix socket; every call is recorded as
    (connection number, method, parameters, more)."""

    def __init__(self, path):
        self.path = str(path)
        self.calls = []
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.connections = 0
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with fake.lock:
                    fake.connections += 1
                    conn = fake.connections
                buf = b""
                while True:
                    try:
                        data = self.request.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                    while b"\0" in buf:
                        msg, buf = buf.split(b"\0", 1)
                        call = json.loads(msg)
                        method = call["method"][len(M):]
                        params = call.get("parameters", {})
                        with fake.lock:
                            fake.calls.append((conn, method, params, bool(call.get("more"))))
                        try:
                            fake.answer(self.request, method, params, bool(call.get("more")))
                        except OSError:
                            return

        self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def send(sock, params=None, continues=False, error=None):
        m = {}
        if error:
            m["error"] = M + error
        if params is not None:
            m["parameters"] = params
        if continues:
            m["continues"] = True
        sock.sendall(json.dumps(m).encode() + b"\0")

    def methods(self, name):
        with self.lock:
            return [c for c in self.calls if c[1] == name]

    def answer(self, sock, method, p, more):
        send = self.send
        if method == "StartExperiment":
            definition, text = p.get("definition"), p.get("text")
            guest = (definition or {}).get("Experiment", {}).get("Guest")
            if text is not None and "Iterations=0" in text:
                return send(sock, {"field": "Experiment.Iterations", "reason": "must be between 1 and 100000"},
                            error="InvalidExperiment")
            if guest == "badset":
                return send(sock, {"reason": "unknown counter set 'tlbx'; there are: host-kvm-exits, time"},
                            error="InvalidExperiment")
            if guest == "busy":
                return send(sock, {"name": "busy", "experiment": "exp-run"}, error="GuestBusy")
            if guest == "req":
                return send(sock, {"counter": "host.kvm_exit", "reason": "no /dev/kvm"}, error="CounterUnavailable")
            if guest == "full":
                return send(sock, {"reason": "No space left on device"}, error="ExperimentStoreFailed")
            if guest == "gone":
                return send(sock, {"name": "gone"}, error="NoSuchVM")
            planned = p.get("iterations") or 3
            exp_id = "exp-slow" if guest == "slow" else "exp-new"
            if not more:
                return send(sock, {"id": exp_id, "state": "running", "iterationsDone": 0,
                                   "iterationsPlanned": planned})
            if guest == "failing":
                send(sock, {"id": exp_id, "state": "running", "iterationsDone": 1, "iterationsPlanned": planned,
                            "iteration": RECORDS[1]}, continues=True)
                return send(sock, {"id": exp_id, "state": "failed", "reason": "the guest crashed",
                                   "iterationsDone": 1, "iterationsPlanned": planned})
            done = 0
            for i in range(planned):
                if guest == "slow":
                    time.sleep(0.3)
                    if self.cancelled.is_set():
                        break
                done += 1
                send(sock, {"id": exp_id, "state": "running", "iterationsDone": done, "iterationsPlanned": planned,
                            "iteration": RECORDS[i]}, continues=True)
            state = "cancelled" if self.cancelled.is_set() else "completed"
            final = {"id": exp_id, "state": state, "iterationsDone": done, "iterationsPlanned": planned}
            if state == "cancelled":
                final["reason"] = "cancelled by a CancelExperiment call"
            return send(sock, final)
        if method == "ListExperiments":
            items = [INFO, INFO_RUNNING]
            if p.get("guest") is not None:
                items = [e for e in items if e["guest"] == p["guest"]]
            return send(sock, {"experiments": items})
        if method == "DescribeExperiment":
            if p.get("id") != "exp-1":
                return send(sock, {"id": p.get("id")}, error="NoSuchExperiment")
            return send(sock, {"experiment": INFO, "definition": {"Experiment": {"Guest": "web"}},
                               "provenance": PROVENANCE, "statistics": STATISTICS, "unavailable": UNAVAILABLE})
        if method == "GetExperimentResults":
            if p.get("id") != "exp-1":
                return send(sock, {"id": p.get("id")}, error="NoSuchExperiment")
            assert more, "GetExperimentResults requires more"
            for k in range(0, len(RECORDS), 64):
                send(sock, {"iterations": RECORDS[k:k + 64]}, continues=k + 64 < len(RECORDS))
            return None
        if method == "CancelExperiment":
            if p.get("id") in ("exp-slow", "exp-run"):
                self.cancelled.set()
                return send(sock, {})
            if p.get("id") == "exp-1":
                return send(sock, {"id": "exp-1", "state": "completed"}, error="ExperimentNotRunning")
            return send(sock, {"id": p.get("id")}, error="NoSuchExperiment")
        if method == "DeleteExperiment":
            if p.get("id") == "exp-run":
                return send(sock, {"id": "exp-run"}, error="ExperimentRunning")
            if p.get("id") == "exp-1":
                return send(sock, {})
            return send(sock, {"id": p.get("id")}, error="NoSuchExperiment")
        sock.sendall(json.dumps({"error": "org.varlink.service.MethodNotFound",
                                 "parameters": {"method": M + method}}).encode() + b"\0")
        return None


@pytest.fixture
def fake(workdir):
    f = Fake(workdir / "fake.sock")
    yield f
    f.stop()


@pytest.fixture
def xctl(ctl, fake):
    """memvisorctl against the fake server."""
    def run(*args, **kwargs):
        return ctl(*args, address="unix:" + fake.path, **kwargs)
    return run


# ---- run ---------------------------------------------------------------------------------------------------


def test_run_guest_builds_definition_and_prints_lines(xctl, fake):
    r = xctl("experiment", "run", "--guest=web", "--operation=migrate", "--set=Provoke.From=0",
             "--set=Provoke.To=1", "--set=Measure.Counters=time", "--set=Measure.Counters=host-tlb",
             "--iterations=3")
    assert r.returncode == 0, r.stderr
    (conn, _, params, more), = fake.methods("StartExperiment")
    assert more
    assert params == {"definition": {"Experiment": {"Guest": "web"},
                                     "Provoke": {"Operation": "migrate", "From": "0", "To": "1"},
                                     "Measure": {"Counters": ["time", "host-tlb"]}},
                      "iterations": 3}
    lines = r.stdout.splitlines()
    # Not a terminal: one plain line per iteration, no carriage returns, then the end.
    assert "\r" not in r.stdout and "\033" not in r.stdout
    assert len(lines) == 4, r.stdout
    assert lines[0].startswith("iteration 1/3 (warm-up): 1.200s, provoke 81.23ms, moved 64.00MiB, ")
    assert "provoke 81.23ms" in lines[0] and "moved 64.00MiB" in lines[0] and "TLB shootdowns 17" in lines[0]
    assert "ETA" in lines[0] and "ETA" not in lines[2]
    assert lines[1].startswith("iteration 2/3: ") and "TLB shootdowns 34" in lines[1]
    assert lines[3] == "Experiment exp-new completed after 3/3 iterations."


def test_run_file_sends_text(xctl, fake, workdir):
    text = "[Experiment]\nGuest=web\nIterations=5\n\n[Provoke]\nOperation=none\n"
    (workdir / "a.experiment").write_text(text)
    r = xctl("experiment", "run", workdir / "a.experiment", "--iterations=2")
    assert r.returncode == 0, r.stderr
    (_, _, params, _), = fake.methods("StartExperiment")
    assert params == {"text": text, "iterations": 2}
    assert r.stdout.splitlines()[-1] == "Experiment exp-new completed after 2/2 iterations."


def test_run_no_wait_and_json(xctl, fake):
    r = xctl("experiment", "run", "--guest=web", "--no-wait")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exp-new\n"
    assert fake.methods("StartExperiment")[0][3] is False      # no more

    r = xctl("--json", "experiment", "run", "--guest=web")
    assert r.returncode == 0, r.stderr
    replies = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["iterationsDone"] for x in replies] == [1, 2, 3, 3]
    assert replies[0]["iteration"] == RECORDS[0]
    assert replies[-1]["state"] == "completed" and "iteration" not in replies[-1]


def test_run_failed_experiment_exits_1(xctl):
    r = xctl("experiment", "run", "--guest=failing")
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1] == "Experiment exp-new failed after 1/3 iterations: the guest crashed."


def run_on_terminal(build, fake, columns=0):
    """memvisorctl experiment run --guest=web with its standard output on a pseudo-terminal of that width (0:
    unknown); returns what it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    p = subprocess.Popen([str(build.memvisorctl), "-A", "unix:" + fake.path, "experiment", "run", "--guest=web"],
                         stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 10)
        assert ready, "no output from memvisorctl on the terminal"
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(timeout=10) == 0, p.stderr.read()
    os.close(master)
    return out.decode()


def test_run_progress_on_a_terminal(build, fake):
    text = run_on_terminal(build, fake)
    # The line is redrawn in place: three iterations, each after a carriage return and an erase, one newline
    # before the end.
    assert text.count("\r\033[K") == 3, repr(text)
    assert "\r\033[Kiteration 3/3: 1.200s, provoke 81.24ms, moved 64.01MiB, TLB shootdowns 51\r\n" in text
    assert text.rstrip("\r\n").endswith("Experiment exp-new completed after 3/3 iterations."), repr(text)

    # Cut to a narrow terminal's width, so that it never wraps.
    text = run_on_terminal(build, fake, columns=40)
    drawn = [part.split("\r")[0] for part in text.split("\r\033[K")[1:]]
    assert len(drawn) == 3 and all(len(d) == 39 for d in drawn), drawn
    assert drawn[0] == "iteration 1/3 (warm-up): 1.200s, provok"


def test_run_ctrl_c_cancels_on_a_second_connection(build, fake):
    p = subprocess.Popen([str(build.memvisorctl), "-A", "unix:" + fake.path, "experiment", "run", "--guest=slow",
                          "--iterations=20"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    assert first.startswith("iteration 1/20"), first
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=15)
    assert p.returncode == 0, (out, err)
    assert "Cancelling experiment exp-slow after the current iteration" in err
    start, = fake.methods("StartExperiment")
    cancel, = fake.methods("CancelExperiment")
    assert cancel[2] == {"id": "exp-slow"} and cancel[0] != start[0]     # on a connection of its own
    last = out.splitlines()[-1]
    assert last.startswith("Experiment exp-slow cancelled after ") and last.endswith(
        "/20 iterations: cancelled by a CancelExperiment call.")


# ---- list, show ------------------------------------------------------------------------------------------


def test_list(xctl, fake):
    r = xctl("experiment", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "GUEST", "NAME", "OPERATION", "STATE", "ITER", "CREATED"]
    assert lines[1].split()[:6] == ["exp-1", "web", "pingpong", "migrate-pingpong", "completed", "130/130"]
    assert lines[2].split()[:6] == ["exp-run", "db", "-", "none", "running", "2/10"]
    assert len(lines) == 3

    r = xctl("experiment", "list", "--guest=db", "--no-legend")
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["exp-run"]
    assert fake.methods("ListExperiments")[-1][2] == {"guest": "db"}

    r = xctl("--json", "experiment", "list")
    assert json.loads(r.stdout) == [INFO, INFO_RUNNING]

    r = xctl("experiment", "list", "--guest=nobody")
    assert r.stdout.splitlines()[-1] == "(no experiments of guest nobody)"


def test_show(xctl):
    r = xctl("experiment", "show", "exp-1")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for want in ["Experiment: exp-1 (pingpong)", "Guest: web", "Operation: migrate-pingpong", "State: completed",
                 "Iterations: 130/130 (1 warm-up)", "Host kernel: 6.1.0-test-amd64",
                 "CPU: Fake Xeon 9000, microcode 0x2b", "QEMU: 8.2.1", "KVM: ept=Y tdp_mmu=Y"]:
        assert want in " ".join(out.split()), (want, out)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line and line.split()[0] in
            ("COUNTER", "time.provoke_usec", "host.migrate.moved_bytes", "guest.tlb_shootdowns")}
    assert rows["COUNTER"] == ["COUNTER", "N", "MEDIAN", "P5–P95", "95%", "CI", "UNIT"]
    assert rows["time.provoke_usec"] == ["time.provoke_usec", "129", "81.30", "81.24–81.36", "81.29–81.31", "ms"]
    assert rows["host.migrate.moved_bytes"] == ["host.migrate.moved_bytes", "129", "64.25", "64.03–64.47", "-", "MiB"]
    assert rows["guest.tlb_shootdowns"] == ["guest.tlb_shootdowns", "129", "1122", "153–2091", "1020–1224", "count"]
    # The columns line up (display width: the en dash is one column).
    widths = {len(line) - line.count("–") * 2 for line in out.splitlines() if line.split() and
              line.split()[0] in rows and line.split()[0] != "COUNTER"}
    assert len(widths) <= 2, out      # the unit's own width differs
    assert "Unavailable:" in out
    assert "host.kvm_exit: no /dev/kvm: the guest runs under TCG (130 iterations)" in out


def test_show_counter_glob_and_json(xctl):
    r = xctl("experiment", "show", "exp-1", "--counter=guest.*")
    assert r.returncode == 0, r.stderr
    assert "guest.tlb_shootdowns" in r.stdout and "time.provoke_usec" not in r.stdout
    assert "guest.vmstat.nr_tlb_remote_flush: kernel without" in r.stdout and "host.kvm_exit" not in r.stdout

    r = xctl("--json", "experiment", "show", "exp-1")
    reply = json.loads(r.stdout)
    assert reply["statistics"] == STATISTICS and reply["experiment"] == INFO and reply["provenance"] == PROVENANCE


# ---- export ------------------------------------------------------------------------------------------------


def test_export_csv_read_back_with_pandas(xctl, fake, workdir):
    pandas = pytest.importorskip("pandas", reason="python3-pandas is not installed (tools/deps.sh)")
    out = workdir / "exp.csv"
    r = xctl("experiment", "export", "exp-1", "--format=csv", "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    get = fake.methods("GetExperimentResults")
    assert len(get) == 1 and get[0][3] and get[0][2] == {"id": "exp-1"}

    df = pandas.read_csv(out, keep_default_na=False, dtype={"value": str})
    assert list(df.columns) == ["experiment", "guest", "variant", "iteration", "warm_up", "started_realtime_usec", "counter",
                                "value", "unit", "unavailable"]
    per = len(RECORDS[0]["counters"]) + len(RECORDS[0]["unavailable"])
    assert len(df) == len(RECORDS) * per
    assert set(df["experiment"]) == {"exp-1"} and set(df["guest"]) == {"web"}
    assert sorted(set(df["iteration"])) == list(range(1, 131))
    assert list(df[df["warm_up"]]["iteration"].unique()) == [1]
    units = {"time.provoke_usec": "us", "host.migrate.moved_bytes": "bytes", "host.vmstat.pgmigrate_success": "count",
             "host.residency.node1.delta_bytes": "bytes", "guest.tlb_shootdowns": "count",
             "workload.per_thread.0.bytes_per_sec": "bytes/s", "host.kvm_exit": "count",
             "guest.vmstat.nr_tlb_remote_flush": "count"}
    for rec in RECORDS:
        rows = df[df["iteration"] == rec["iteration"]]
        assert set(rows["started_realtime_usec"]) == {rec["startedRealtimeUSec"]}
        for name, value in rec["counters"].items():
            row, = rows[rows["counter"] == name].itertuples()
            assert float(row.value) == value and row.unit == units[name] and row.unavailable == ""
        for name, reason in rec["unavailable"].items():
            row, = rows[rows["counter"] == name].itertuples()
            assert row.value == "" and row.unavailable == reason and row.unit == units[name]
    # Exact integers (no exponent, negative deltas kept).
    assert "-528384" in set(df[df["counter"] == "host.residency.node1.delta_bytes"]["value"])


def test_export_json_lines_to_stdout(xctl):
    r = xctl("experiment", "export", "exp-1", "--format=json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line) for line in r.stdout.splitlines()] == RECORDS


def test_export_errors(xctl, workdir):
    r = xctl("experiment", "export", "exp-1")
    assert r.returncode == 2 and "--format=csv or --format=json" in r.stderr
    r = xctl("experiment", "export", "nope", "--format=csv")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [M + "NoSuchExperiment", "No experiment nope."]
    r = xctl("experiment", "export", "exp-1", "--format=csv", "--output=" + str(workdir / "no" / "dir.csv"))
    assert r.returncode == 2 and "Cannot write" in r.stderr


# ---- cancel, delete, errors ---------------------------------------------------------------------------------


def test_cancel_delete(xctl, fake):
    r = xctl("experiment", "cancel", "exp-run")
    assert r.returncode == 0 and r.stdout == "Experiment exp-run will stop after the current iteration.\n"
    assert fake.methods("CancelExperiment")[-1][2] == {"id": "exp-run"}
    r = xctl("experiment", "delete", "exp-1")
    assert r.returncode == 0 and r.stdout == "Experiment exp-1 deleted.\n"
    r = xctl("--json", "experiment", "delete", "exp-1")
    assert r.returncode == 0 and json.loads(r.stdout) == {}


@pytest.mark.parametrize("args,error,message", [
    (["run", "--guest=busy"], "GuestBusy", "Guest busy is busy: experiment exp-run runs on it."),
    (["run", "--guest=req"], "CounterUnavailable",
     "Counter host.kvm_exit is required (Require=) but cannot be taken: no /dev/kvm"),
    (["run", "--guest=full"], "ExperimentStoreFailed",
     "The experiment's files could not be written: No space left on device"),
    (["run", "--guest=badset"], "InvalidExperiment",
     "Invalid experiment definition: unknown counter set 'tlbx'; there are: host-kvm-exits, time"),
    (["show", "nope"], "NoSuchExperiment", "No experiment nope."),
    (["cancel", "exp-1"], "ExperimentNotRunning", "Experiment exp-1 is not running (it is completed)."),
    (["delete", "exp-run"], "ExperimentRunning",
     "Experiment exp-run is running: cancel it first (memvisorctl experiment cancel exp-run)."),
])
def test_errors(xctl, args, error, message):
    r = xctl("experiment", *args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [M + error, message]


def test_invalid_file_names_the_field(xctl, workdir):
    (workdir / "bad.experiment").write_text("[Experiment]\nGuest=web\nIterations=0\n")
    r = xctl("experiment", "run", workdir / "bad.experiment")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [M + "InvalidExperiment",
                                     "Invalid experiment definition: Experiment.Iterations=: must be between 1 and "
                                     "100000"]


def test_other_errors_as_every_verb(xctl):
    r = xctl("experiment", "run", "--guest=gone")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [M + "NoSuchVM", '{"name":"gone"}']


@pytest.mark.parametrize("args,why", [
    (["run"], "a FILE or --guest=NAME"),
    (["run", "x.experiment", "--guest=web"], "a FILE or --guest=NAME"),
    (["run", "--guest=web", "--operation=teleport"], "Invalid --operation=teleport"),
    (["run", "--guest=web", "--iterations=0"], "Invalid --iterations=0"),
    (["run", "--guest=web", "--set=Provoke"], "Invalid --set=Provoke"),
    (["run", "/nonexistent.experiment"], "Cannot read /nonexistent.experiment"),
    (["list", "--counter=x"], "--counter= goes with experiment show"),
    (["show", "exp-1", "--format=csv"], "go with experiment export"),
    (["show"], "takes one ID"),
    (["list", "extra"], "no further arguments"),
    (["explode"], "Unknown experiment command 'explode'"),
    (["export", "exp-1", "--format=xml"], "Invalid --format=xml"),
    (["plot", "exp-1"], "-o FILE.svg or -o FILE.png"),
    (["plot", "exp-1", "-o", "x.pdf"], "-o FILE.svg or -o FILE.png"),
    (["plot", "-o", "x.svg"], "1 to 8 experiment IDs"),
    (["plot", "exp-1", "-o", "x.svg", "--width=5"], "Invalid --width=5"),
    (["plot", "exp-1", "--format=csv", "-o", "x.svg"], "go with experiment export"),
    (["show", "exp-1", "--over-time"], "go with experiment plot"),
])
def test_usage_errors(xctl, fake, args, why):
    r = xctl("experiment", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert why in r.stderr
    assert fake.calls == []


def test_no_daemon_exits_3(ctl, workdir):
    r = ctl("experiment", "list", address="unix:" + str(workdir / "nothing.sock"))
    assert r.returncode == 3 and "Failed to connect" in r.stderr
