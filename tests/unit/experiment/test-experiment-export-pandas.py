#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The tidy CSV of an experiment's iterations (src/experiment/experiment-export.c), read back by pandas (Debian's
python3-pandas) with its defaults, as a user would: pandas.read_csv(path).

Generated records (warm-up iterations, integer and double counters, negative deltas, unsigned 64-bit values,
counters missing from some iterations, unavailable counters whose reasons hold commas, double quotes, newlines and
non-ASCII text, a guest name that needs quoting) go through experiment-summary-dump csv; the checks:
  - the columns, in order, and one row per iteration × counter plus one per unavailable entry;
  - dtypes: iteration and started_realtime_usec int64, warm_up bool, value float64 with NaN exactly on the
    unavailable rows, the text columns object;
  - every value equals the record's, every reason and name reads back unchanged; rows are sorted by counter
    within an iteration, unavailable rows after. pandas' default float converter ('high') is not correctly
    rounded (off by tens of ulps for 17 significant digits below 0.1), so the defaults are held to 1e-13
    relative and read_csv(..., float_precision='round_trip') to exact equality (%.17g reads back to the same
    double);
  - the csv module reads the same rows, and the integers are printed exactly (2^64 - 1 as
    18446744073709551615, not in floating point).
Exit 77 (skipped) when pandas cannot be imported (by this interpreter nor by /usr/bin/python3).

    test-experiment-export-pandas.py PATH-TO-experiment-summary-dump
"""

import csv
import io
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import pandas as pd
except ImportError as e:
    system = '/usr/bin/python3'
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
        os.execv(system, [system] + sys.argv)
    print('SKIP: pandas not available (%s): install python3-pandas (tools/deps.sh)' % e)
    sys.exit(77)

from experiment_testlib import check, failures, unit  # noqa: E402 (after the interpreter is settled)

COLUMNS = ['experiment', 'guest', 'variant', 'iteration', 'warm_up', 'started_realtime_usec', 'counter', 'value', 'unit',
           'unavailable']
EXPERIMENT = '20261204-222222-a1b2c3'
GUEST = 'web "one", two'




rng = np.random.default_rng(4180)
REASONS = ['no /dev/kvm: the guest runs under TCG', 'agent said "no", then left', 'line one\nline two',
           'kein Zugriff, ça coûte', 'ends with a comma,']
records = []
for i in range(12):
    counters = {
        'time.provoke_usec': int(rng.integers(50000, 90000)),
        'workload.per_thread.0.bytes_per_sec': float(rng.lognormal(20, 1)),
        'host.residency.node1.delta_bytes': -int(rng.integers(0, 1 << 30)),
        'host.kvm_stats.vm.pages_4k': (1 << 64) - 1 - i,
        'workload.ratio': float(rng.normal()) / 3,
        'host.migrate.moved_pages': 0,
    }
    if i % 3 == 0:
        counters['guest.tlb_shootdowns.cpu1'] = int(rng.integers(0, 10))
    unavailable = {}
    if i % 2 == 0:
        unavailable['host.kvm_exit'] = REASONS[0]
    if i % 4 == 1:
        unavailable['guest.vmstat'] = REASONS[1 + i % 4]
    unavailable['guest.interrupts'] = REASONS[i % len(REASONS)]
    records.append({'iteration': i + 1, 'warmUp': i < 2, 'startedRealtimeUSec': 1796000000000000 + 1000003 * i,
                    'durationUSec': 5, 'counters': counters, 'unavailable': unavailable,
                    'variant': 'AB'[i % 2], 'block': i // 2 + 1})

proc = subprocess.run([sys.argv[1], 'csv', EXPERIMENT, GUEST],
                      input=''.join(json.dumps(r) + '\n' for r in records), capture_output=True, text=True,
                      timeout=120)
if proc.returncode != 0:
    print('experiment-summary-dump failed (%d): %s' % (proc.returncode, proc.stderr))
    sys.exit(1)
text = proc.stdout

# the rows expected, in order
want = []
for r in records:
    for name in sorted(r['counters']):
        want.append((r, name, r['counters'][name], None))
    for name in sorted(r['unavailable']):
        want.append((r, name, None, r['unavailable'][name]))

df = pd.read_csv(io.StringIO(text))
exact = pd.read_csv(io.StringIO(text), float_precision='round_trip')
check(str(exact['value'].dtype) == 'float64', 'value dtype (round_trip) %s' % exact['value'].dtype)
check(list(df.columns) == COLUMNS, 'columns %r' % list(df.columns))
check(len(df) == len(want), 'rows: %d, want %d' % (len(df), len(want)))
check(str(df['iteration'].dtype) == 'int64', 'iteration dtype %s' % df['iteration'].dtype)
check(str(df['started_realtime_usec'].dtype) == 'int64', 'started_realtime_usec dtype %s'
      % df['started_realtime_usec'].dtype)
check(str(df['warm_up'].dtype) == 'bool', 'warm_up dtype %s' % df['warm_up'].dtype)
check(str(df['value'].dtype) == 'float64', 'value dtype %s' % df['value'].dtype)
for c in ('experiment', 'guest', 'variant', 'counter', 'unit', 'unavailable'):
    check(str(df[c].dtype) == 'object', '%s dtype %s' % (c, df[c].dtype))
check(int(df['value'].isna().sum()) == sum(1 for w in want if w[3] is not None), 'NaN values: %d'
      % int(df['value'].isna().sum()))

for k, (r, name, value, reason) in enumerate(want):
    if k >= len(df):
        break
    row = df.iloc[k]
    what = 'row %d (iteration %d, %s)' % (k, r['iteration'], name)
    check(row['experiment'] == EXPERIMENT and row['guest'] == GUEST, what + ': experiment, guest')
    check(int(row['iteration']) == r['iteration'], what + ': iteration')
    check(row['variant'] == r['variant'], what + ': variant %r' % row['variant'])
    check(bool(row['warm_up']) == r['warmUp'], what + ': warm_up')
    check(int(row['started_realtime_usec']) == r['startedRealtimeUSec'], what + ': started_realtime_usec')
    check(row['counter'] == name, what + ': counter %r' % row['counter'])
    check(row['unit'] == unit(name), what + ': unit %r' % row['unit'])
    if reason is None:
        check(abs(row['value'] - float(value)) <= 1e-13 * abs(float(value)),
              what + ': value %r, want %r' % (row['value'], float(value)))
        check(exact.iloc[k]['value'] == float(value),
              what + ': value (round_trip) %r, want %r' % (exact.iloc[k]['value'], float(value)))
        check(isinstance(row['unavailable'], float) and math.isnan(row['unavailable']), what + ': unavailable')
    else:
        check(math.isnan(row['value']), what + ': value %r, want NaN' % row['value'])
        check(row['unavailable'] == reason, what + ': reason %r, want %r' % (row['unavailable'], reason))

# the csv module: the same rows, and the integers exactly as the records hold them
rows = list(csv.reader(io.StringIO(text, newline='')))
check(rows[0] == COLUMNS, 'csv header %r' % rows[0])
check(len(rows) - 1 == len(want), 'csv rows %d' % (len(rows) - 1))
for (r, name, value, reason), row in zip(want, rows[1:]):
    what = 'csv iteration %d %s' % (r['iteration'], name)
    check(len(row) == len(COLUMNS), what + ': %d fields' % len(row))
    check(row[2] == r['variant'], what + ': variant %r' % row[2])
    check(row[4] == ('true' if r['warmUp'] else 'false'), what + ': warm_up %r' % row[4])
    if reason is None:
        if isinstance(value, int):
            check(row[7] == str(value), what + ': %r, want %d exactly' % (row[7], value))
        else:
            check(float(row[7]) == value, what + ': %r does not read back as %r' % (row[7], value))
        check(row[9] == '', what + ': unavailable %r' % row[9])
    else:
        check(row[7] == '' and row[9] == reason, what + ': value %r, reason %r' % (row[7], row[9]))

print('pandas %s: %d rows (%d unavailable), %d records' % (pd.__version__, len(df),
                                                          sum(1 for w in want if w[3] is not None), len(records)))
if failures:
    print('%d failure(s)' % len(failures))
    sys.exit(1)
print('ok')
