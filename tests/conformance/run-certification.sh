#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs the reference varlink certification client (varlink-go-certification, Debian package varlink-go)
# against a real memvisord built with -Dcertification=true.
#
# Usage: run-certification.sh MEMVISORD MEMVISORCTL
# Environment: VARLINK_GO_CERTIFICATION (default: varlink-go-certification from $PATH),
#              CERTIFICATION_CLIENTS (concurrent client runs, default 4).
# Exit status: 0 passed, 1 failed, 77 skipped (client missing, or the build lacks the interface).

set -u

daemon=${1:?usage: run-certification.sh MEMVISORD MEMVISORCTL}
ctl=${2:?usage: run-certification.sh MEMVISORD MEMVISORCTL}
client=${VARLINK_GO_CERTIFICATION:-varlink-go-certification}
n_clients=${CERTIFICATION_CLIENTS:-4}

skip() {
        echo "SKIP: $*"
        exit 77
}

fail() {
        echo "FAIL: $*"
        if [[ -n "${tmp:-}" && -f "$tmp/daemon.log" ]]; then
                echo "--- memvisord log ---"
                cat "$tmp/daemon.log"
        fi
        exit 1
}

client_path=$(command -v "$client") || skip "$client not found (install the varlink-go package)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memvisor-certification.XXXXXX") || fail "cannot create a temporary directory"
daemon_pid=
cleanup() {
        if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
                kill -KILL "$daemon_pid" 2>/dev/null
                wait "$daemon_pid" 2>/dev/null
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT

: >"$tmp/memvisord.conf"
sock="$tmp/run/io.memvisor.Manager"

"$daemon" --runtime-dir="$tmp/run" --state-dir="$tmp/state" --config="$tmp/memvisord.conf" \
        --log-target=console --log-level=debug >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!

# The socket file appears at bind(), a moment before listen(): wait until a call goes through.
# memvisorctl exits 3 when it cannot connect.
ready=
for _ in $(seq 100); do
        kill -0 "$daemon_pid" 2>/dev/null || fail "memvisord exited before listening"
        if [[ -S "$sock" ]]; then
                "$ctl" -A "unix:$sock" info >"$tmp/info.txt" 2>&1
                rc=$?
                if [[ $rc -eq 0 ]]; then
                        ready=1
                        break
                fi
                [[ $rc -eq 3 ]] || fail "memvisorctl info failed (status $rc): $(cat "$tmp/info.txt")"
        fi
        sleep 0.1
done
[[ -n "$ready" ]] || fail "memvisord did not answer on $sock within 10 s: $(cat "$tmp/info.txt" 2>/dev/null)"

grep -Eq '(^|[[:space:]])org\.varlink\.certification$' "$tmp/info.txt" ||
        skip "memvisord was built without -Dcertification=true (org.varlink.certification is not served)"

# The client exits 0 even when a step fails; it then prints "<Method>() failed" and stops. Success is
# the last line "End: 'true'", which it prints only after every step got the reply it expects.
client_pids=()
for i in $(seq "$n_clients"); do
        timeout 60 "$client_path" -client -varlink "unix:$sock" >"$tmp/client-$i.log" 2>&1 &
        client_pids+=($!)
done

failed=0
for i in $(seq "$n_clients"); do
        wait "${client_pids[$((i - 1))]}"
        rc=$?
        log="$tmp/client-$i.log"
        if [[ $rc -ne 0 ]]; then
                echo "client $i: exit status $rc"
                failed=1
        elif grep -q 'failed' "$log"; then
                echo "client $i: a step failed"
                failed=1
        elif [[ "$(tail -n 1 "$log")" != "End: 'true'" ]]; then
                echo "client $i: did not end with End: 'true'"
                failed=1
        elif [[ $(grep -c "^  Receive: 'Reply number " "$log") -ne 10 ]]; then
                echo "client $i: did not receive the 10 replies of Test10"
                failed=1
        fi
        if [[ $failed -ne 0 ]]; then
                echo "--- client $i output ---"
                cat "$log"
                fail "varlink-go-certification did not pass"
        fi
done
cat "$tmp/client-1.log"

kill -0 "$daemon_pid" 2>/dev/null || fail "memvisord died during the certification"
n_passed=$(grep -c 'Certification client .* passed\.' "$tmp/daemon.log")
[[ "$n_passed" -eq "$n_clients" ]] || fail "memvisord logged $n_passed passed runs, expected $n_clients"

kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
[[ $rc -eq 0 ]] || fail "memvisord exited with status $rc after SIGTERM"

echo "PASS: $n_clients concurrent varlink-go-certification runs passed against memvisord"
exit 0
