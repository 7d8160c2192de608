#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The layering of src/ at the symbol level: each folder's static library may only use symbols defined in
itself or in the folders below it (the ALLOWED table of check-layers.py), so nothing calls back up into a
higher layer even through a declaration written by hand. Reads the libraries with nm.

    check-symbols.py NM FOLDER=LIB.a...
"""
import importlib.util
import os
import subprocess
import sys

spec = importlib.util.spec_from_file_location('check_layers',
                                              os.path.join(os.path.dirname(__file__), 'check-layers.py'))
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)
ALLOWED = check_layers.ALLOWED


def symbols(nm, lib, flag):
    out = subprocess.run([nm, flag, '--format=posix', lib], capture_output=True, text=True, check=True).stdout
    result = set()
    for line in out.splitlines():
        parts = line.split()
        # "name type [value size]"; archive member headers end with ':' or are "lib.a[obj.o]:"
        if len(parts) >= 2 and not parts[0].endswith(':') and not line.endswith(':'):
            if flag == '--defined-only' and parts[1] not in 'TDBRVWCGSIi' + 'tdbrvwgs':
                continue
            if flag == '--defined-only' and parts[1].islower():
                continue        # local symbols are not exported
            result.add(parts[0])
    return result


def main():
    nm = sys.argv[1]
    libs = dict(a.split('=', 1) for a in sys.argv[2:])
    defined = {f: symbols(nm, p, '--defined-only') for f, p in libs.items()}
    owner = {}
    for f, syms in defined.items():
        for s in syms:
            owner.setdefault(s, f)
    errors = []
    for f, p in sorted(libs.items()):
        for s in sorted(symbols(nm, p, '--undefined-only')):
            o = owner.get(s)
            if o is None or o == f or s in defined[f]:
                continue        # outside the project (libc, libsystemd, …) or its own
            if o not in ALLOWED[f]:
                errors.append('%s uses %s, defined in %s, which is not below %s' % (f, s, o, f))
    for e in errors:
        print(e)
    if errors:
        print('%d call(s) up the layers' % len(errors))
        return 1
    print('symbols ok: %d libraries, each using only its own symbols and those of the folders below' % len(libs))
    return 0


if __name__ == '__main__':
    sys.exit(main())
