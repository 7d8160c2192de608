#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The comparison of two experiments (src/experiment/experiment-compare.c) against numpy/scipy (Debian's
python3-numpy, python3-scipy) on fixed data sets: equal samples, a shifted one, heavy ties, tiny n (1, 2, 3, 5),
n < 10 and a larger pair, plus warm-up iterations with wild values (which must not count), counters on one side
only (absent, or unavailable with a reason) and differing provenance. For every counter compared:

  medianA, medianB, nA, nB     np.median, len, over the measured (non-warm-up) records only; to 1e-12 relative
  ratio                        medianB / medianA, exactly as the division gives it (1e-12)
  u, p, method                 scipy.stats.mannwhitneyu(B, A, alternative='two-sided', method='auto') (U of B),
                               p to 1e-6 relative, exact when min(n) <= 8 and no ties
  cliffsDelta                  (#(b > a) - #(b < a)) / (nA nB), counted pair by pair (exact)
  pHolm, significant           Holm's step-down adjustment written out here; significant = pHolm < 0.05
  ratioCILow/High              not recomputed: low <= ratio <= high on these sets, and the same seed gives the same
                               interval (another seed, another one), seed and resamples stated in the output
Also: counters outside the globs are left out, different operations and bad resamples are refused, the notCompared
reasons, the provenance differences (volatile items left out). Exit 77 (skipped) when numpy or scipy cannot be
imported.

    test-experiment-compare-scipy.py PATH-TO-experiment-compare-dump
"""

import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import scipy.stats
except ImportError as e:
    system = '/usr/bin/python3'
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
        os.execv(system, [system] + sys.argv)
    print('SKIP: numpy/scipy not available (%s): install python3-numpy python3-scipy (tools/deps.sh)' % e)
    sys.exit(77)

failures = []
deviation = {}


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 40:
            print('FAIL: ' + what)


def close(key, got, want, rel, what):
    if got is None:
        check(False, '%s %s: got null, want %r' % (what, key, want))
        return
    diff = abs(got - want)
    d = diff / abs(want) if want != 0 else diff
    deviation[key] = max(deviation.get(key, 0.0), d)
    check(d <= rel, '%s %s: got %r, want %r (relative %.3g)' % (what, key, got, want, d))


def records(columns, warm_up=0, unavailable=None):
    """Iteration records from {counter: [values]} (a None value: the counter is missing in that iteration)."""
    n = max(len(v) for v in columns.values())
    out = []
    for i in range(warm_up):
        out.append({'iteration': i + 1, 'warmUp': True, 'startedRealtimeUSec': 1000 + i,
                    'counters': {k: 1e12 for k in columns}})
    for i in range(n):
        counters = {k: v[i] for k, v in columns.items() if i < len(v) and v[i] is not None}
        rec = {'iteration': warm_up + i + 1, 'warmUp': False, 'startedRealtimeUSec': 2000 + i, 'counters': counters}
        if unavailable:
            rec['unavailable'] = unavailable
        out.append(rec)
    return out


rng = np.random.default_rng(20261205)
lognormal = lambda n, mu: [float(x) for x in rng.lognormal(mu, 0.3, n)]

# Each set: counters of A and of B (the same names on both sides, unless said otherwise).
SETS = {
    'equal': ({'time.provoke_usec': [100.0, 100.0, 100.0, 100.0, 100.0],
               'host.vmstat.pgmigrate_success': [5, 7, 6, 8, 5, 6]},
              {'time.provoke_usec': [100.0, 100.0, 100.0, 100.0, 100.0],
               'host.vmstat.pgmigrate_success': [5, 7, 6, 8, 5, 6]}),
    'shifted': ({'time.provoke_usec': lognormal(12, 10.0), 'host.migrate.moved_pages': list(range(100, 112))},
                {'time.provoke_usec': [x * 1.5 for x in lognormal(12, 10.0)],
                 'host.migrate.moved_pages': list(range(150, 162))}),
    'ties': ({'host.tlb_flush.qemu': [3, 3, 4, 4, 4, 5, 3, 4, 4, 3], 'guest.vmstat.nr_free_pages': [1, 1, 1, 2]},
             {'host.tlb_flush.qemu': [4, 4, 5, 5, 4, 6, 5, 4, 5, 5, 5], 'guest.vmstat.nr_free_pages': [1, 2, 2, 2, 1]}),
    'tiny': ({'time.workload_usec': [10.0], 'time.iteration_usec': [10.0, 12.0], 'host.kvm_page_fault': [1, 2, 3]},
             {'time.workload_usec': [11.0], 'time.iteration_usec': [30.0, 31.0, 29.0],
              'host.kvm_page_fault': [7, 9, 8, 10, 6]}),
    'small-large': ({'time.provoke_usec': lognormal(7, 9.0), 'workload.elapsed_ns': lognormal(40, 15.0)},
                    {'time.provoke_usec': lognormal(9, 9.1), 'workload.elapsed_ns': lognormal(35, 15.05)}),
}

requests = []
for name, (ca, cb) in SETS.items():
    requests.append((name, {'a': records(ca, warm_up=2), 'b': records(cb, warm_up=1), 'seed': 7, 'resamples': 2000}))

# The same set with another seed, and again with the first: the interval is reproducible.
requests.append(('shifted-seed8', dict(requests[1][1], seed=8)))
requests.append(('shifted-seed7', dict(requests[1][1])))

# One-sided counters, globs, provenance.
one_a = records({'time.provoke_usec': [1.0, 2.0, 3.0], 'host.kvm_exit.total': [5, 6, 7],
                 'host.tlb_flush.qemu': [1, 2, 3]})
one_b = records({'time.provoke_usec': [2.0, 3.0, 4.0], 'guest.vmstat.pgfault': [9, 9, 9]},
                unavailable={'host.kvm_exit': 'no /dev/kvm: the guest runs under TCG'})
prov_a = {'collectedAt': '2026-12-04T20:00:00Z', 'kernel': {'release': '6.1.0'}, 'qemu': {'version': '7.2'}}
prov_b = {'collectedAt': '2026-12-05T20:00:00Z', 'kernel': {'release': '6.12.0'}, 'qemu': {'version': '7.2'}}
requests.append(('one-sided', {'a': one_a, 'b': one_b, 'provenanceA': prov_a, 'provenanceB': prov_b}))
requests.append(('globs', {'a': one_a, 'b': one_b, 'counters': ['time.*', 'guest.*']}))
requests.append(('operations', {'a': one_a, 'b': one_b, 'definitionA': {'Provoke': {'Operation': 'migrate'}},
                                'definitionB': {'Provoke': {'Operation': 'balloon'}}}))
requests.append(('baseline', {'a': one_a, 'b': one_b, 'definitionA': {'Provoke': {'Operation': 'none'}},
                              'definitionB': {'Provoke': {'Operation': 'migrate'}}}))
requests.append(('same-operation', {'a': one_a, 'b': one_b, 'definitionA': {'Provoke': {'Operation': 'migrate'}},
                                    'definitionB': {'Provoke': {'Operation': 'migrate'}}}))
requests.append(('resamples0', {'a': one_a, 'b': one_b, 'resamples': 0}))
requests.append(('resamples-big', {'a': one_a, 'b': one_b, 'resamples': 100001}))
requests.append(('zero-median', {'a': records({'host.vmstat.pgmigrate_fail': [0, 0, 1]}),
                                 'b': records({'host.vmstat.pgmigrate_fail': [0, 2, 2]})}))

proc = subprocess.run([sys.argv[1]], input=''.join(json.dumps(r) + '\n' for _, r in requests), capture_output=True,
                      text=True, timeout=600)
if proc.returncode != 0:
    print('experiment-compare-dump failed (%d): %s' % (proc.returncode, proc.stderr))
    sys.exit(1)
lines = proc.stdout.splitlines()
if len(lines) != len(requests):
    print('experiment-compare-dump answered %d of %d requests' % (len(lines), len(requests)))
    sys.exit(1)
replies = {name: json.loads(line) for (name, _), line in zip(requests, lines)}


def holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


n_counters = 0
for name, (ca, cb) in SETS.items():
    got = replies[name]
    check('error' not in got, name + ': refused: %r' % got)
    if 'error' in got:
        continue
    check(got['seed'] == 7 and got['resamples'] == 2000 and got['level'] == 0.95 and got['alpha'] == 0.05,
          name + ': seed, resamples, level, alpha as stated')
    check(got['a']['warmUp'] == 2 and got['b']['warmUp'] == 1, name + ': warm-up counted')
    names = sorted(set(ca) & set(cb))
    check([c['counter'] for c in got['comparisons']] == names, name + ': the counters compared, sorted')
    check(got['notCompared'] == [], name + ': nothing left out')
    ps = []
    for c in got['comparisons']:
        what = '%s %s' % (name, c['counter'])
        a = np.array([v for v in ca[c['counter']] if v is not None], dtype=float)
        b = np.array([v for v in cb[c['counter']] if v is not None], dtype=float)
        n_counters += 1
        check(c['nA'] == len(a) and c['nB'] == len(b), what + ': n')
        close('medianA', c['medianA'], float(np.median(a)), 1e-12, what)
        close('medianB', c['medianB'], float(np.median(b)), 1e-12, what)
        close('ratio', c['ratio'], float(np.median(b)) / float(np.median(a)), 1e-12, what)
        res = scipy.stats.mannwhitneyu(b, a, alternative='two-sided', method='auto')
        close('u', c['u'], float(res.statistic), 1e-12, what)
        close('p', c['p'], float(res.pvalue), 1e-6, what)
        ties = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
        want_method = 'exact' if min(len(a), len(b)) <= 8 and not ties else 'asymptotic'
        check(c['method'] == want_method, what + ': method %s, want %s' % (c['method'], want_method))
        gt = sum(1 for x in b for y in a if x > y)
        lt = sum(1 for x in b for y in a if x < y)
        close('cliffsDelta', c['cliffsDelta'], (gt - lt) / (len(a) * len(b)), 1e-12, what)
        lo, hi = c['ratioCILow'], c['ratioCIHigh']
        check(lo is not None and hi is not None and lo <= c['ratio'] <= hi,
              what + ': the interval [%r, %r] brackets the ratio %r' % (lo, hi, c['ratio']))
        ps.append(float(res.pvalue))
    for c, want in zip(got['comparisons'], holm(ps)):
        close('pHolm', c['pHolm'], want, 1e-6, '%s %s' % (name, c['counter']))
        check(c['significant'] == (c['pHolm'] < 0.05), '%s %s: significant' % (name, c['counter']))

# Figures that must come out as they do on these sets.
eq = {c['counter']: c for c in replies['equal']['comparisons']}
check(all(c['p'] == 1.0 and c['cliffsDelta'] == 0.0 and c['ratio'] == 1.0 and not c['significant']
          for c in eq.values()), 'equal: p = 1, delta = 0, ratio = 1, not significant')
sh = {c['counter']: c for c in replies['shifted']['comparisons']}
check(sh['host.migrate.moved_pages']['cliffsDelta'] == 1.0 and sh['host.migrate.moved_pages']['significant'],
      'shifted: complete separation is significant, delta 1')
check(sh['time.provoke_usec']['ratioCILow'] > 1.0, 'shifted: the interval of a 1.5x shift is above 1')

# Reproducible for the same seed, another interval for another seed.
s7 = {c['counter']: (c['ratioCILow'], c['ratioCIHigh']) for c in replies['shifted']['comparisons']}
s7b = {c['counter']: (c['ratioCILow'], c['ratioCIHigh']) for c in replies['shifted-seed7']['comparisons']}
s8 = {c['counter']: (c['ratioCILow'], c['ratioCIHigh']) for c in replies['shifted-seed8']['comparisons']}
check(s7 == s7b, 'the same seed gives the same intervals')
check(s7 != s8, 'another seed gives other intervals')
check(replies['shifted-seed8']['seed'] == 8, 'the seed is stated')

# One side only, with the reason; the provenance differences without the volatile items.
one = replies['one-sided']
check([c['counter'] for c in one['comparisons']] == ['time.provoke_usec'],
      'one-sided: compared %r' % one['comparisons'])
nc = {c['counter']: c for c in one['notCompared']}
check(sorted(nc) == ['guest.vmstat.pgfault', 'host.kvm_exit.total', 'host.tlb_flush.qemu'], 'one-sided: %r' % nc)
check(nc.get('host.kvm_exit.total', {}).get('reason') == 'unavailable in B: no /dev/kvm: the guest runs under TCG'
      and nc['host.kvm_exit.total']['side'] == 'a', 'one-sided: the reason of an unavailable counter: %r' % nc)
check(nc.get('host.tlb_flush.qemu', {}).get('reason') == 'not measured in B', 'one-sided: absent in B')
check(nc.get('guest.vmstat.pgfault', {}).get('reason') == 'not measured in A' and
      nc['guest.vmstat.pgfault']['side'] == 'b',
      'one-sided: absent in A')
check(one['provenanceDifferences'] == [{'key': 'kernel.release', 'a': '6.1.0', 'b': '6.12.0'}],
      'provenance differences: %r' % one['provenanceDifferences'])
check(one['seed'] == 1 and one['resamples'] == 10000 and one['counterGlobs'] is None, 'the defaults are stated')
check(one['comparisons'][0]['pHolm'] == one['comparisons'][0]['p'], 'Holm over one counter is the p-value')

gl = replies['globs']
check([c['counter'] for c in gl['comparisons']] == ['time.provoke_usec'] and
      [c['counter'] for c in gl['notCompared']] == ['guest.vmstat.pgfault'] and
      gl['counterGlobs'] == ['time.*', 'guest.*'], 'globs choose the counters: %r' % gl)

op = replies['operations']
check(op.get('error') == -22 and op.get('field') is None and 'migrate' in op.get('reason', '') and
      'balloon' in op.get('reason', ''), 'different operations are refused: %r' % op)
check(replies['baseline'].get('operation') == 'migrate' and replies['baseline'].get('baseline') == 'a',
      'an operation against its baseline is compared: %r' % {k: replies['baseline'].get(k)
                                                              for k in ('operation', 'baseline', 'error')})
check(replies['same-operation'].get('operation') == 'migrate', 'the operation is stated')
for k in ('resamples0', 'resamples-big'):
    check(replies[k].get('error') == -22 and replies[k].get('field') == 'resamples', '%s refused: %r' % (k, replies[k]))
zm = replies['zero-median']['comparisons'][0]
check(zm['ratio'] is None and zm['ratioCILow'] is None and 'median of A is 0' in zm['ratioNote'] and
      zm['p'] is not None, 'a zero median of A: no ratio, the test still: %r' % zm)

print('%d data sets, %d counters compared against scipy; largest relative deviation: %s' %
      (len(SETS), n_counters, ', '.join('%s %.3g' % kv for kv in sorted(deviation.items()))))
if failures:
    print('%d failures' % len(failures))
    sys.exit(1)
