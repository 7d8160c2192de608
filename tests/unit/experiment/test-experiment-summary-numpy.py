#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The statistics of an experiment's iterations (src/experiment/experiment-summary.c) against numpy/scipy
(Debian's python3-numpy, python3-scipy) on generated experiments: iteration records as the runner writes them,
with warm-up iterations (wild values that must not count), counters present in only some iterations, integer
counters with heavy ties, negative deltas, unsigned 64-bit values, doubles, and unavailable counters. Sizes: n = 1, 2,
5, 6, 7, 9 (below 10, around the first n with a 95 % interval of the median), 30 and 100.

For every data set experiment-summary-dump prints the summary; this script recomputes from the measured
(non-warm-up) records only:
  iterations, warmUp             counted over all records
  statistics                     one per counter, sorted by name, with the unit the name gives
  n, min, max                    len, np.min, np.max
  mean, stddev                   np.mean, np.std(ddof=1) (null for n < 2)
  median, p5, p95                np.median, np.percentile(x, [5, 95]) (numpy's default 'linear')
  medianCILow/High/Coverage      lo = the largest k with 1 - 2 binom.cdf(k - 1, n, 1/2) >= 0.95
                                 (scipy.stats.binom), [x_(lo), x_(n+1-lo)], that coverage; null when no k
  unavailable                    per name: the measured records that said it, the last reason
to 1e-9 relative. Bad records are refused ({"error": -EBADMSG}). Prints the number of data sets and counters
and the largest relative deviation of each figure. Exit 77 (skipped) when numpy or scipy cannot be imported (by
this interpreter nor by /usr/bin/python3).

    test-experiment-summary-numpy.py PATH-TO-experiment-summary-dump
"""

import errno
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import scipy
    import scipy.stats
except ImportError as e:
    system = '/usr/bin/python3'
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
        os.execv(system, [system] + sys.argv)
    print('SKIP: numpy/scipy not available (%s): install python3-numpy python3-scipy (tools/deps.sh)' % e)
    sys.exit(77)

from experiment_testlib import check, failures, unit  # noqa: E402 (after the interpreter is settled)

REL = 1e-9
deviation = {}



def close(key, got, want, what, scale=0.0):
    if want is None:
        check(got is None, '%s %s: got %r, want null' % (what, key, got))
        return
    if got is None:
        check(False, '%s %s: got null, want %r' % (what, key, want))
        return
    diff = abs(got - want)
    d = diff / abs(want) if want != 0 else diff
    deviation[key] = max(deviation.get(key, 0.0), d)
    check(d <= REL or diff <= 1e-15 * scale, '%s %s: got %r, want %r (relative %.3g)' % (what, key, got, want, d))



rng = np.random.default_rng(20261204)


def values(kind, n):
    """A list of python numbers (ints stay ints, so that the record holds JSON integers)."""
    if kind == 'normal':
        return [float(v) for v in rng.normal(81234.0, 900.0, n)]
    if kind == 'lognormal':
        return [float(v) for v in rng.lognormal(10.0, 1.0, n)]
    if kind == 'ties':
        return [int(v) for v in rng.integers(0, 4, n)]
    if kind == 'ties-wide':
        return [int(v) * 4096 for v in rng.integers(0, 12, n)]
    if kind == 'negative':
        return [int(v) for v in rng.integers(-5000, 100, n)]
    if kind == 'u64':
        return [int(v) + (1 << 63) for v in rng.integers(0, 1 << 40, n)]
    if kind == 'equal':
        return [42] * n
    raise ValueError(kind)


COUNTERS = [
    ('time.provoke_usec', 'normal'),
    ('workload.per_thread.0.bytes_per_sec', 'lognormal'),
    ('host.kvm_exit.EPT_VIOLATION.vcpu0', 'ties'),
    ('host.migrate.moved_bytes', 'ties-wide'),
    ('host.residency.node0.delta_bytes', 'negative'),
    ('host.kvm_stats.vm.pages_4k', 'u64'),
    ('guest.tlb_shootdowns', 'equal'),
]
REASONS = ['no /dev/kvm: the guest runs under TCG', 'no CAP_PERFMON', 'agent absent, "qga" not answering, twice']


def experiment(n, warm_up):
    """The records of one experiment: warm_up warm-up iterations, then n measured ones."""
    total = n + warm_up
    columns = {name: values(kind, total) for name, kind in COUNTERS}
    records = []
    for i in range(total):
        counters = {}
        for j, (name, _) in enumerate(COUNTERS):
            # the last two counters skip some iterations: their own n
            if j == len(COUNTERS) - 2 and i % 3 == 1:
                continue
            if j == len(COUNTERS) - 1 and i % 2 == 1:
                continue
            v = columns[name][i]
            counters[name] = v * 1000 if i < warm_up and isinstance(v, int) else v
        unavailable = {}
        if i % 2 == 0:
            unavailable['host.kvm_exit'] = REASONS[i % 3]
        if i % 5 == 4:
            unavailable['guest.vmstat'] = REASONS[(i + 1) % 3]
        if i < warm_up:
            unavailable['warm.only'] = 'said in a warm-up only'
            counters['warm.only'] = 1
        records.append({'iteration': i + 1, 'warmUp': i < warm_up, 'startedRealtimeUSec': 1796000000000000 + i,
                        'durationUSec': 1000 + i, 'counters': counters, 'unavailable': unavailable,
                        'workload': {'elapsed_ns': 5}})
    return records


SETS = [(1, 0), (2, 1), (5, 0), (6, 2), (7, 0), (9, 3), (30, 0), (100, 5), (100, 0)]
datasets = [experiment(n, w) for n, w in SETS]
datasets.append([])                                            # no record at all
datasets.append([{'iteration': 1, 'warmUp': True, 'startedRealtimeUSec': 0, 'counters': {'a': 1}}])
BAD = {'iteration': 2, 'warmUp': False, 'startedRealtimeUSec': 0, 'counters': {'a': 'x'}}
datasets.append(experiment(6, 0) + [BAD])

lines = []
for records in datasets:
    lines += [json.dumps(r) for r in records]
    lines.append('end')
proc = subprocess.run([sys.argv[1], 'summary'], input='\n'.join(lines) + '\n', capture_output=True, text=True,
                      timeout=300)
if proc.returncode != 0:
    print('experiment-summary-dump failed (%d): %s' % (proc.returncode, proc.stderr))
    sys.exit(1)
replies = [json.loads(line) for line in proc.stdout.splitlines()]
if len(replies) != len(datasets):
    print('experiment-summary-dump answered %d of %d data sets' % (len(replies), len(datasets)))
    sys.exit(1)

checked = 0
for records, got in zip(datasets, replies):
    what = 'set of %d records' % len(records)
    if BAD in records:
        check(got == {'error': -errno.EBADMSG}, what + ': the bad record is refused: %r' % got)
        continue
    measured = [r for r in records if not r['warmUp']]
    check(got['iterations'] == len(records), what + ': iterations')
    check(got['warmUp'] == len(records) - len(measured), what + ': warmUp')

    columns = {}
    for r in measured:
        for name, v in r['counters'].items():
            columns.setdefault(name, []).append(v)
    names = sorted(columns)
    check([s['counter'] for s in got['statistics']] == names,
          what + ': counters %r, want %r' % ([s['counter'] for s in got['statistics']], names))
    for st in got['statistics']:
        name = st['counter']
        if name not in columns:
            continue
        x = np.array([float(v) for v in columns[name]])
        n = len(x)
        w = '%s %s n=%d' % (what, name, n)
        scale = float(np.max(np.abs(x)))
        check(st['unit'] == unit(name), w + ': unit %s' % st['unit'])
        check(st['n'] == n, w + ': n %r' % st['n'])
        close('min', st['min'], float(np.min(x)), w, scale)
        close('max', st['max'], float(np.max(x)), w, scale)
        close('mean', st['mean'], float(np.mean(x)), w, scale)
        close('stddev', st['stddev'], float(np.std(x, ddof=1)) if n >= 2 else None, w, scale)
        close('median', st['median'], float(np.median(x)), w, scale)
        p5, p95 = np.percentile(x, [5, 95])
        close('p5', st['p5'], float(p5), w, scale)
        close('p95', st['p95'], float(p95), w, scale)
        lo = 0
        for k in range(1, (n + 1) // 2 + 1):
            if 1 - 2 * scipy.stats.binom.cdf(k - 1, n, 0.5) >= 0.95:
                lo = k
        if lo == 0:
            check(n < 6, w + ': scipy finds no 95 % interval for n >= 6')
            for key in ('medianCILow', 'medianCIHigh', 'medianCICoverage'):
                close(key, st[key], None, w)
        else:
            s = np.sort(x)
            close('medianCILow', st['medianCILow'], float(s[lo - 1]), w, scale)
            close('medianCIHigh', st['medianCIHigh'], float(s[n - lo]), w, scale)
            close('medianCICoverage', st['medianCICoverage'],
                  float(1 - 2 * scipy.stats.binom.cdf(lo - 1, n, 0.5)), w)
        checked += 1

    unavailable = {}
    for r in measured:
        for name, reason in r.get('unavailable', {}).items():
            unavailable[name] = (unavailable.get(name, (0, None))[0] + 1, reason)
    want = [{'counter': name, 'reason': unavailable[name][1], 'iterations': unavailable[name][0]}
            for name in sorted(unavailable)]
    check(got['unavailable'] == want, what + ': unavailable %r, want %r' % (got['unavailable'], want))

print('numpy %s, scipy %s' % (np.__version__, scipy.__version__))
print('data sets: %d, counters checked: %d' % (len(datasets), checked))
for key in sorted(deviation):
    print('  max relative deviation %-17s %.3g' % (key, deviation[key]))
if failures:
    print('%d failure(s)' % len(failures))
    sys.exit(1)
print('ok')
