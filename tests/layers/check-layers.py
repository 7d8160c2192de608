#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The layering of src/, checked: every project include names its folder ("basic/macro.h"), and a folder
includes only from the folders below it.

    basic  <-  varlink, qmp, qga, trace, stats, metrics, exporter, dbus  <-  numa, balloon  <-  config, vm  <-  experiment  <-  daemon, ctl

Within a row a folder may use another only where ALLOWED says so (metrics reads QMP statistics). The
allowed graph has no cycle, so no include circle is larger than one folder. Exit 1 and one line per
violation (file:line: what) when something is wrong.

    check-layers.py SRC-DIR
"""
import os
import re
import sys

ALLOWED = {
    'basic': set(),
    'varlink': {'basic'},
    'qmp': {'basic'},
    'qga': {'basic'},
    'trace': {'basic'},
    'stats': {'basic'},
    'metrics': {'basic', 'qmp'},
    'exporter': {'basic'},
    'dbus': {'basic'},
    'numa': {'basic', 'qmp', 'metrics'},
    'balloon': {'basic', 'qmp', 'metrics'},
    'config': {'basic', 'varlink', 'qmp', 'metrics', 'exporter', 'balloon'},
    'vm': {'basic', 'qmp', 'qga', 'metrics', 'numa', 'balloon'},
    'experiment': {'basic', 'qmp', 'qga', 'trace', 'stats', 'metrics', 'numa', 'balloon', 'config', 'vm'},
    'daemon': {'basic', 'varlink', 'qmp', 'qga', 'trace', 'stats', 'metrics', 'exporter', 'dbus', 'numa', 'balloon',
               'config', 'vm', 'experiment'},
    'ctl': {'basic', 'varlink', 'numa', 'balloon', 'experiment'},
    'touch': set(),     # memvisor-touch, the guest workload: a program of its own, libc only
}
# Generated at build time: the configuration header at the build root, and varlink's embedded IDL.
GENERATED = {'build-config.h': None, 'varlink/varlink-idl.h': 'varlink'}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def check_graph():
    """The allowed graph itself must be acyclic (a folder never reaches itself)."""
    errors = []
    for start in ALLOWED:
        seen, todo = set(), list(ALLOWED[start])
        while todo:
            f = todo.pop()
            if f == start:
                errors.append('ALLOWED: %s reaches itself' % start)
                break
            if f not in seen:
                seen.add(f)
                todo.extend(ALLOWED.get(f, ()))
    return errors


def self_test():
    """The checker must fail on each kind of violation (a test that cannot fail is no test)."""
    import subprocess
    import tempfile
    cases = {
        'upward': ('basic/a.h', '#include "daemon/b.h"\n'),
        'bare': ('vm/a.h', '#include "b.h"\n'),
        'missing': ('vm/a.h', '#include "basic/nothere.h"\n'),
        'sideways': ('numa/a.h', '#include "balloon/b.h"\n'),
    }
    for what, (path, text) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for folder in ('basic', 'daemon', 'vm', 'numa', 'balloon'):
                os.mkdir(os.path.join(d, folder))
                open(os.path.join(d, folder, 'b.h'), 'w').close()
            with open(os.path.join(d, path), 'w') as f:
                f.write(text)
            r = subprocess.run([sys.executable, __file__, d], capture_output=True, text=True)
            if r.returncode != 1:
                print('self-test: %s include not caught:\n%s' % (what, r.stdout))
                return 1
    print('self-test ok: %d kinds of violation caught' % len(cases))
    return 0


def main():
    if sys.argv[1] == '--self-test':
        return self_test()
    src = sys.argv[1]
    errors = check_graph()
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for folder in folders:
        if folder not in ALLOWED:
            errors.append('%s/%s: folder not in the layer table of %s' % (src, folder, __file__))
            continue
        for name in sorted(os.listdir(os.path.join(src, folder))):
            if not name.endswith(('.c', '.h')):
                continue
            path = os.path.join(src, folder, name)
            with open(path, encoding='utf-8') as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    where = '%s:%d' % (path, n)
                    if inc in GENERATED:
                        owner = GENERATED[inc]
                        if owner and owner != folder and owner not in ALLOWED[folder]:
                            errors.append('%s: %s includes "%s" (a lower layer may not use %s)'
                                          % (where, folder, inc, owner))
                        continue
                    if '/' not in inc:
                        if os.path.exists(os.path.join(src, folder, inc)):
                            errors.append('%s: "%s" must name its folder: "%s/%s"' % (where, inc, folder, inc))
                        else:
                            errors.append('%s: "%s" must name its folder ("folder/%s")' % (where, inc, inc))
                        continue
                    target = inc.split('/', 1)[0]
                    if not os.path.exists(os.path.join(src, inc)):
                        errors.append('%s: "%s" does not exist under %s' % (where, inc, src))
                    elif target != folder and target not in ALLOWED[folder]:
                        errors.append('%s: %s includes "%s": %s is not below %s (allowed: %s)'
                                      % (where, folder, inc, target, folder,
                                         ', '.join(sorted(ALLOWED[folder])) or 'nothing'))
    for e in errors:
        print(e)
    if errors:
        print('%d layering violation(s)' % len(errors))
        return 1
    print('layers ok: %d folders' % len(folders))
    return 0


if __name__ == '__main__':
    sys.exit(main())
