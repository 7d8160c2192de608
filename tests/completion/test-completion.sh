#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The generated shell completion of memvisorctl (suite 'docs'):
#   test-completion.sh MEMVISORD MEMVISORCTL BASH-COMPLETION ZSH-COMPLETION EXAMPLE.vm
# Starts a private memvisord with two guests (web, db; defined, not started), then, in bash subshells with
# COMP_WORDS/COMP_CWORD set by hand, calls the completion function and checks COMPREPLY: verbs, global
# and verb options, option values, log levels and guest names asked from the daemon (through -A, --address=
# and $MEMVISOR_ADDRESS); with no daemon answering it must complete nothing and print nothing. Once more
# with bash-completion loaded when it is installed. The zsh completion gets `zsh -n` when zsh is installed.
set -u
MEMVISORD=$1 MEMVISORCTL=$2 BASH_COMP=$3 ZSH_COMP=$4 EXAMPLE_VM=$5
failed=0

T=$(mktemp -d /tmp/memvisor-completion.XXXXXX) || exit 1
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/vms" "$T/bin"
cp "$EXAMPLE_VM" "$T/vms/web.vm" && cp "$EXAMPLE_VM" "$T/vms/db.vm" || exit 1
ln -s "$(realpath "$MEMVISORCTL")" "$T/bin/memvisorctl"
"$MEMVISORD" --runtime-dir="$T/run" --state-dir="$T/state" --config=/dev/null --vm-dir="$T/vms" \
    --log-target=console >"$T/memvisord.log" 2>&1 &
pid=$!
SOCK=$T/run/io.memvisor.Manager
for _ in $(seq 100); do
    [ -S "$SOCK" ] && "$MEMVISORCTL" -A "unix:$SOCK" list >/dev/null 2>&1 && break
    sleep 0.1
done
if ! "$MEMVISORCTL" -A "unix:$SOCK" list 2>&1; then
    echo "memvisord did not answer on $SOCK:"; cat "$T/memvisord.log"; exit 1
fi

# complete_words [VAR=VALUE...] -- WORD... : runs the bash completion on the words (the cursor on the last
# one) in a fresh bash and prints COMPREPLY, sorted, space-separated. Anything on standard error fails.
PRELOAD=
complete_words() {
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    env -i PATH="$T/bin:/usr/bin:/bin" HOME="$T" PRELOAD="$PRELOAD" COMP_FILE="$COMP_FILE" "${envs[@]}" bash --norc --noprofile -c '
        [ -n "$PRELOAD" ] && . "$PRELOAD"
        . "$COMP_FILE" || exit 1
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        _memvisorctl memvisorctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " " | sed "s/ $//"
    ' completion-test "$@" 2>"$T/stderr"
    if [ -s "$T/stderr" ]; then
        echo "(stderr: $(cat "$T/stderr"))"
    fi
}

# check DESCRIPTION EXPECTED [VAR=VALUE...] -- WORD...
check() {
    local what=$1 want=$2 got
    shift 2
    got=$(PRELOAD=$PRELOAD COMP_FILE=$BASH_COMP complete_words "$@")
    if [ "$got" = "$want" ]; then
        echo "ok: $what: '$got'"
    else
        echo "FAIL: $what: completing '${*#*-- }': expected '$want', got '$got'"
        failed=1
    fi
}
export PRELOAD COMP_FILE=$BASH_COMP

run_checks() {
    check "a verb" "balloon balloon-decisions balloon-steps" -- memvisorctl bal
    check "every verb" "$("$MEMVISORCTL" --list-verbs | cut -f1 | grep -v '^-$' | sort | tr '\n' ' ' | sed 's/ $//')" \
        -- memvisorctl ''
    check "a global option" "--address=" -- memvisorctl --addr
    check "a verb's option" "--settle=" -- memvisorctl migrate web --se
    check "a verb's options after a global one" "--replace" -- memvisorctl -j define --rep
    check "an option's value (split at =)" "KILL" -- memvisorctl kill web --signal = KI
    check "a log level" "debug" -- memvisorctl log-level de
    check "guest names (-A)" "db web" -- memvisorctl -A "unix:$SOCK" start ''
    check "a guest name (--address=, split at =)" "web" -- memvisorctl --address = "unix:$SOCK" balloon w
    check "guest names (\$MEMVISOR_ADDRESS)" "db web" MEMVISOR_ADDRESS="unix:$SOCK" -- memvisorctl stop ''
    check "a guest name after the verb's options" "db" MEMVISOR_ADDRESS="unix:$SOCK" -- \
        memvisorctl migrate --from 0 d
    check "no guest name where a size goes" "" MEMVISOR_ADDRESS="unix:$SOCK" -- memvisorctl balloon web ''
    check "no guest names without a daemon (silent)" "" -- memvisorctl -A "unix:$T/nothing" status ''
    check "no guest names without a daemon (\$MEMVISOR_ADDRESS)" "" MEMVISOR_ADDRESS="unix:$T/nothing" -- \
        memvisorctl undefine ''
}

echo "== plain bash"
PRELOAD= run_checks
# The registration the shell sees.
reg=$(bash --norc --noprofile -c '. "$1" && complete -p memvisorctl' x "$BASH_COMP" 2>&1)
if [ "$reg" = "complete -F _memvisorctl memvisorctl" ]; then
    echo "ok: registered: $reg"
else
    echo "FAIL: registration: '$reg'"
    failed=1
fi

if [ -r /usr/share/bash-completion/bash_completion ]; then
    echo "== with bash-completion loaded"
    PRELOAD=/usr/share/bash-completion/bash_completion run_checks
else
    echo "-- bash-completion is not installed (apt-get install bash-completion): checked in plain bash only"
fi

# zcheck DESCRIPTION EXPECTED WORD...: runs the zsh completion function outside the completion system, with
# compadd, _files, compset and _call_program stubbed, and compares the candidates it offers (unfiltered by
# the word under the cursor, which compadd would do).
zcheck() {
    local what=$1 want=$2 got
    shift 2
    got=$(env -i PATH="$T/bin:/usr/bin:/bin" HOME="$T" MEMVISOR_ADDRESS="unix:$SOCK" zsh -f -c '
        compadd() {
            local arr=
            while (( $# )); do
                case $1 in (-a) arr=1; shift ;; (-S) shift 2 ;; (--) shift; break ;; (-*) shift ;; (*) break ;; esac
            done
            if [[ -n $arr ]]; then print -rl -- "${(P@)1}"; else print -rl -- "$@"; fi
        }
        _files() { print FILES }
        compset() { : }
        _call_program() { shift; eval "$@" }
        words=("${@:2}")
        CURRENT=${#words}
        source "$1"
    ' zcheck "$ZSH_COMP" "$@" 2>&1 | sort | tr '\n' ' ' | sed 's/ $//')
    if [ "$got" = "$want" ]; then
        echo "ok: zsh: $what: '$got'"
    else
        echo "FAIL: zsh: $what: completing '$*': expected '$want', got '$got'"
        failed=1
    fi
}

if command -v zsh >/dev/null; then
    if zsh -n "$ZSH_COMP"; then
        echo "ok: zsh -n $ZSH_COMP"
    else
        echo "FAIL: zsh -n $ZSH_COMP"
        failed=1
    fi
    zcheck "verbs" "$("$MEMVISORCTL" --list-verbs | cut -f1 | grep -v '^-$' | sort | tr '\n' ' ' | sed 's/ $//')" \
        memvisorctl ''
    zcheck "a verb's options" "$("$MEMVISORCTL" --list-verbs | grep -E '^(-|migrate)	' | cut -f3 | tr ' ' '\n' |
        grep . | sed 's/=$//' | sort | tr '\n' ' ' | sed 's/ $//')" memvisorctl migrate web --se
    zcheck "guest names (-A)" "db web" memvisorctl -A "unix:$SOCK" start ''
    zcheck "guest names after the verb's options" "db web" memvisorctl migrate --from 0 ''
    zcheck "a log level" "alert crit debug emerg err info notice warning" memvisorctl log-level d
    zcheck "no guest names without a daemon (silent)" "" memvisorctl -A "unix:$T/nothing" stop ''
else
    echo "-- zsh is not installed (apt-get install zsh): the zsh completion is not checked"
fi

exit $failed
