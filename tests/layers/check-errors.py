#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""memvisord's API errors are one table (src/daemon/manager-errors.h): check it against what declares and
documents them.

- its varlink errors are exactly the `error X (...)` lines of io.memvisor.Manager.varlink;
- its D-Bus errors are exactly those memvisord(8) lists for io.memvisor.Manager1;
- no other source file spells an io.memvisor.Manager error name (src/ctl, the client, excepted: it names
  methods, not errors).

    check-errors.py SRC-DIR IDL MAN-PAGE
"""
import os
import re
import sys

ROW = re.compile(r'^\s*X\((\w+),\s*(\w+),\s*(VARLINK|BUS|BOTH)\)')


def main():
    src, idl, man = sys.argv[1:4]
    errors = []
    table = os.path.join(src, 'daemon', 'manager-errors.h')
    varlink, bus, codes = set(), set(), set()
    with open(table, encoding='utf-8') as f:
        for line in f:
            m = ROW.match(line)
            if not m:
                continue
            code, name, where = m.groups()
            if code in codes or name in varlink | bus:
                errors.append('%s: %s listed twice' % (table, name))
            codes.add(code)
            if where in ('VARLINK', 'BOTH'):
                varlink.add(name)
            if where in ('BUS', 'BOTH'):
                bus.add(name)
    if not codes:
        errors.append('%s: no X(CODE, Name, where) rows found' % table)

    with open(idl, encoding='utf-8') as f:
        declared = set(re.findall(r'^error\s+(\w+)', f.read(), re.M))
    for n in sorted(declared - varlink):
        errors.append('%s: error %s is not in %s (or not marked VARLINK/BOTH)' % (idl, n, table))
    for n in sorted(varlink - declared):
        errors.append('%s: %s is marked for varlink but the IDL declares no error %s' % (table, n, n))

    with open(man, encoding='utf-8') as f:
        text = f.read()
    m = re.search(r'^Errors:\n(.*?)^a bad argument is', text, re.M | re.S)
    if not m:
        errors.append('%s: no "Errors:" paragraph for io.memvisor.Manager1' % man)
    else:
        documented = set(re.findall(r'^\.BR? (?:io\.memvisor\.Manager1)?\.(\w+)', m.group(1), re.M))
        for n in sorted(documented - bus):
            errors.append('%s: D-Bus error %s is not in %s (or not marked BUS/BOTH)' % (man, n, table))
        for n in sorted(bus - documented):
            errors.append('%s: %s is marked for D-Bus but %s does not document it' % (table, n, man))

    spelled = re.compile(r'"io\.memvisor\.Manager1?\.[A-Z]\w*"')
    for folder in sorted(os.listdir(src)):
        if folder == 'ctl' or not os.path.isdir(os.path.join(src, folder)):
            continue
        for name in sorted(os.listdir(os.path.join(src, folder))):
            path = os.path.join(src, folder, name)
            if path == table or not name.endswith(('.c', '.h')):
                continue
            with open(path, encoding='utf-8') as f:
                for n, line in enumerate(f, 1):
                    if spelled.search(line):
                        errors.append('%s:%d: an API error name spelt outside %s: %s'
                                      % (path, n, table, line.strip()))

    for e in errors:
        print(e)
    if errors:
        print('%d problem(s) with the error table' % len(errors))
        return 1
    print('error table ok: %d errors, %d on varlink, %d on D-Bus' % (len(codes), len(varlink), len(bus)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
