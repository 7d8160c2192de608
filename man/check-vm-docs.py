#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Keeps the guest definition documentation true to the daemon.

check-vm-docs.py keys VM_SPEC_KEYS MAN_PAGE
    Every [Section] Key= of the daemon's key table (vm_keys[] in src/vm/vm-spec-keys.c, as the
    VM_SPEC_KEYS program built from it prints it) is described in memvisor.vm(5), under
    ".SH [SECTION] SECTION", and the page describes no key the daemon does not know.

check-vm-docs.py examples MEMVISORD MEMVISORCTL VMS_DIR
    Every VMS_DIR/*.vm (conf/vms) is accepted by a real memvisord: one is started with private
    runtime and state directories and --vm-dir=VMS_DIR, ListVMs must list each file's guest in state
    "defined", and the daemon must not log "Invalid guest definition". No guest is started: an
    example with Autostart=yes is refused before the daemon runs.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

def spec_keys(vm_spec_keys):
    """The (section, key) pairs the daemon knows: VM_SPEC_KEYS prints "SECTION KEY [multiple]" lines."""
    r = subprocess.run([vm_spec_keys], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f'{vm_spec_keys} failed (exit status {r.returncode}): {r.stderr.strip()}')
    return {tuple(line.split()[:2]) for line in r.stdout.splitlines() if line.strip()}


def man_keys(page, sections):
    """Keys described as ".TP" items under ".SH [SECTION] SECTION" headings. Headings are upper case
    ("[MEMORY] SECTION"); sections maps them back to the spelling in vm_keys[]."""
    names = {s.upper(): s for s in sections}
    keys, section, after_tp = set(), None, False
    for line in open(page, encoding='utf-8'):
        m = re.match(r'\.SH \[(\w+)\] SECTION', line)
        if m:
            section = names.get(m.group(1).upper(), m.group(1))
        elif line.startswith('.SH '):
            section = None
        elif section and after_tp:
            m = re.match(r'\.B[IR]? (\w+)=', line)
            if m:
                keys.add((section, m.group(1)))
        after_tp = line.startswith('.TP')
    return keys


def check_keys(vm_spec_keys, page):
    want = spec_keys(vm_spec_keys)
    have = man_keys(page, {s for s, _ in want})
    ok = bool(want)
    if not want:
        print(f'{vm_spec_keys}: printed no keys')
    for s, k in sorted(want - have):
        print(f'{page}: [{s}] {k}= is not documented')
        ok = False
    for s, k in sorted(have - want):
        print(f'{page}: documents [{s}] {k}=, which memvisord does not know')
        ok = False
    print(f'{len(want)} keys in vm_keys[], {len(have)} documented')
    return ok


TRUE = re.compile(r'^\s*Autostart\s*=\s*(1|yes|y|true|t|on)\s*$', re.I | re.M)


def list_vms(memvisorctl, address):
    r = subprocess.run([memvisorctl, '-A', address, '--json', 'list'], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return json.loads(r.stdout), None


def check_examples(memvisord, memvisorctl, vms_dir):
    files = sorted(glob.glob(os.path.join(vms_dir, '*.vm')))
    if not files:
        print(f'{vms_dir}: no *.vm files')
        return False
    for f in files:
        if TRUE.search(open(f, encoding='utf-8').read()):
            print(f'{f}: Autostart=yes would start a guest during the test; examples keep it off')
            return False

    tmp = tempfile.mkdtemp(prefix='mv-vm-examples-')
    run, state = os.path.join(tmp, 'run'), os.path.join(tmp, 'state')
    address = os.path.join(run, 'io.memvisor.Manager')
    log_path = os.path.join(tmp, 'memvisord.log')
    ok = True
    with open(log_path, 'w') as log:
        daemon = subprocess.Popen([memvisord, f'--runtime-dir={run}', f'--state-dir={state}',
                                   '--config=/dev/null', f'--vm-dir={os.path.abspath(vms_dir)}',
                                   '--log-target=console', '--log-level=info'],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        vms, error = None, None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and daemon.poll() is None:
            if os.path.exists(address):
                vms, error = list_vms(memvisorctl, address)
                if vms is not None:
                    break
            time.sleep(0.05)
        if vms is None:
            print(f'memvisord did not answer ListVMs: {error or "no socket"}'
                  f' (exit status {daemon.poll()})')
            ok = False
        else:
            listed = {v['name']: v for v in vms}
            for f in files:
                name = os.path.basename(f)[:-len('.vm')]
                v = listed.get(name)
                if not v:
                    print(f'{f}: guest {name} is not listed by ListVMs')
                    ok = False
                elif v.get('state') != 'defined':
                    print(f'{f}: guest {name} is in state {v.get("state")}, expected defined')
                    ok = False
                else:
                    print(f'{f}: {name} defined, {v["vcpus"]} vCPUs, {v["memoryBytes"]} bytes')
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
                print('memvisord did not exit on SIGTERM')
                ok = False
        text = open(log_path, encoding='utf-8', errors='replace').read()
        shutil.rmtree(tmp, ignore_errors=True)

    for line in text.splitlines():
        if 'Invalid guest definition' in line or 'already defined' in line:
            print(line)
            ok = False
    if not ok:
        print('--- memvisord log ---')
        print(text, end='')
    return ok


def main():
    if len(sys.argv) == 4 and sys.argv[1] == 'keys':
        ok = check_keys(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == 'examples':
        ok = check_examples(*sys.argv[2:])
    else:
        sys.exit(__doc__)
    print('ok' if ok else 'FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
