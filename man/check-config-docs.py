#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Keeps the configuration documentation true to the daemon.

Checks that
  - every [Section] Key= in config_items[] (src/config/config.c) is described in memvisord.conf(5)
    and listed, commented out, in conf/memvisord.conf, and that neither documents a key the daemon
    does not know;
  - conf/memvisord.conf parses (memvisord --check-config), as shipped and with every setting
    uncommented.

usage: check-config-docs.py MEMVISORD CONFIG_C MAN_PAGE CONF_FILE
"""
import os
import re
import subprocess
import sys
import tempfile


def daemon_keys(config_c):
    text = open(config_c, encoding='utf-8').read()
    m = re.search(r'config_items\[\]\s*=\s*\{(.*?)\n\};', text, re.S)
    if not m:
        sys.exit(f'{config_c}: config_items[] not found')
    return set(re.findall(r'\{\s*"(\w+)",\s*"(\w+)"', m.group(1)))


def man_keys(page):
    """Keys described as ".TP" items under ".SH [SECTION] SECTION" headings."""
    keys, section, after_tp = set(), None, False
    for line in open(page, encoding='utf-8'):
        m = re.match(r'\.SH \[(\w+)\] SECTION', line)
        if m:
            # Headings are upper case; sections whose name is not simply capitalized are listed here.
            section = {'DBUS': 'DBus'}.get(m.group(1), m.group(1).capitalize())
        elif line.startswith('.SH '):
            section = None
        elif section and after_tp:
            m = re.match(r'\.B[IR]? (\w+)=', line)
            if m:
                keys.add((section, m.group(1)))
        after_tp = line.startswith('.TP')
    return keys


def conf_keys(conf):
    keys, section = set(), None
    for n, line in enumerate(open(conf, encoding='utf-8'), 1):
        line = line.strip()
        m = re.fullmatch(r'\[(\w+)\]', line)
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r'#(\w+)=.*', line)
        if m:
            if not section:
                sys.exit(f'{conf}:{n}: setting outside of any section')
            keys.add((section, m.group(1)))
    return keys


def check_config(memvisord, path):
    r = subprocess.run([memvisord, f'--config={path}', '--check-config', '--log-target=console'],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip().endswith(': OK'):
        print(f'memvisord --check-config rejected {path}:\n{r.stdout}{r.stderr}')
        return False
    return True


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    memvisord, config_c, page, conf = sys.argv[1:]
    ok = True

    want = daemon_keys(config_c)
    for name, have in (('memvisord.conf(5)', man_keys(page)), (conf, conf_keys(conf))):
        for s, k in sorted(want - have):
            print(f'{name}: [{s}] {k}= is not documented')
            ok = False
        for s, k in sorted(have - want):
            print(f'{name}: documents [{s}] {k}=, which memvisord does not know')
            ok = False

    ok = check_config(memvisord, conf) and ok
    with tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False) as t:
        for line in open(conf, encoding='utf-8'):
            t.write(re.sub(r'^#(\w+=)', r'\1', line))
    try:
        ok = check_config(memvisord, t.name) and ok
    finally:
        os.unlink(t.name)

    print('ok' if ok else 'FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
