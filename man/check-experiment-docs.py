#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Keeps the experiment definition documentation true to the code.

check-experiment-docs.py EXPERIMENT_SPEC_KEYS MAN_PAGE

- Every [Section] Key= of the key table (experiment_keys[] in src/experiment/experiment-spec-keys.c, as the
  EXPERIMENT_SPEC_KEYS program built from it prints it) is described in memvisor.experiment(5) as a ".TP"
  item under ".SH [SECTION] SECTION", and the page describes no key the code does not know.
- Every counter set of the code's table is a ".TP" item under ".SH COUNTER SETS", and no other.
- Every example file in the page (an .EX block starting with "[Experiment]") is accepted by the parser.
"""
import os
import re
import subprocess
import sys
import tempfile


def run(prog, *args):
    r = subprocess.run([prog, *args], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def unroff(s):
    return s.replace('\\-', '-').replace('\\(aq', "'").replace('\\(dq', '"').replace('\\&', '')


def parse_page(page):
    """(section, key) pairs, counter names and example texts of the page."""
    keys, counters, examples = set(), set(), []
    section, after_tp, example = None, False, None
    for line in open(page, encoding='utf-8'):
        line = line.rstrip('\n')
        if example is not None:
            if line == '.EE':
                if example and example[0] == '[Experiment]':
                    examples.append('\n'.join(example) + '\n')
                example = None
            else:
                example.append(unroff(line))
            continue
        if line == '.EX':
            example = []
            continue
        m = re.match(r'\.SH \[(\w+)\] SECTION$', line)
        if m:
            section = m.group(1)
        elif line == '.SH COUNTER SETS':
            section = 'COUNTERS'
        elif line.startswith('.SH '):
            section = None
        elif section and after_tp:
            if section == 'COUNTERS':
                m = re.match(r'\.B (\S+)$', line)
                if m:
                    counters.add(unroff(m.group(1)))
            else:
                m = re.match(r'\.B[IR]? (\w+)=', line)
                if m:
                    keys.add((section, m.group(1)))
        after_tp = line.startswith('.TP')
    return keys, counters, examples


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    prog, page = sys.argv[1:]
    rc, out, err = run(prog)
    if rc != 0:
        sys.exit(f'{prog} failed (exit status {rc}): {err.strip()}')
    want_keys, want_counters = set(), set()
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == 'key':
            want_keys.add((f[1].upper(), f[2]))
        elif f and f[0] == 'counter':
            want_counters.add(f[1])
    have_keys, have_counters, examples = parse_page(page)

    ok = bool(want_keys) and bool(want_counters) and bool(examples)
    if not want_keys or not want_counters:
        print(f'{prog}: printed no keys or no counter sets')
    if not examples:
        print(f'{page}: no example starting with [Experiment]')
    for s, k in sorted(want_keys - have_keys):
        print(f'{page}: [{s}] {k}= is not documented')
        ok = False
    for s, k in sorted(have_keys - want_keys):
        print(f'{page}: documents [{s}] {k}=, which the code does not know')
        ok = False
    for c in sorted(want_counters - have_counters):
        print(f'{page}: counter set {c} is not documented under COUNTER SETS')
        ok = False
    for c in sorted(have_counters - want_counters):
        print(f'{page}: documents counter set {c}, which the code does not know')
        ok = False

    with tempfile.TemporaryDirectory(prefix='mv-experiment-docs-') as d:
        paths = []
        for i, text in enumerate(examples):
            p = os.path.join(d, f'example-{i + 1}.experiment')
            with open(p, 'w', encoding='utf-8') as f:
                f.write(text)
            paths.append(p)
        if paths:
            rc, out, err = run(prog, *paths)
            print(out, end='')
            if rc != 0:
                print(f'{page}: an example is refused by the parser')
                ok = False

    print(f'{len(want_keys)} keys, {len(want_counters)} counter sets in the code; {len(have_keys)} keys, '
          f'{len(have_counters)} counter sets and {len(examples)} examples in the page')
    print('ok' if ok else 'FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
