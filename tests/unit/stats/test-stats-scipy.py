#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""src/stats against numpy/scipy (Debian's python3-numpy, python3-scipy) on many generated data sets: random
normal, lognormal, heavy ties (a few small integers), all-equal, n = 1..40 with most sets at n < 10. Every figure
stats-dump prints is compared with what numpy/scipy compute on the same values:

  summary   min, max, mean (np.mean), std (np.std ddof=1), median (np.median), p5/p95 (np.percentile, 'linear'),
            the median CI: the ranks from scipy.stats.binom (the largest lo with 1 - 2 binom.cdf(lo - 1, n, 1/2)
            >= 0.95), its bounds and coverage; to 1e-9 relative
  compare   scipy.stats.mannwhitneyu(x, y, alternative='two-sided', method='auto'): U of x and the p-value (1e-6
            relative) and which method scipy chose; Cliff's delta counted pair by pair
  holm      a direct implementation of Holm's step-down adjustment (statsmodels' multipletests when installed)
  boot      the documented generator (splitmix64 -> xoshiro256**) re-implemented here, np.median of each resample
            and np.percentile(ratios, [2.5, 97.5])
  rng       the first draws for a few seeds against the same re-implementation

Prints the number of data sets and the largest relative deviation of each figure. Exit 77 (skipped) when numpy or
scipy cannot be imported (by this interpreter nor by /usr/bin/python3).

    test-stats-scipy.py PATH-TO-stats-dump
"""

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
    # Debian's python3-numpy/python3-scipy belong to the system interpreter; meson may have found another python3
    # first on PATH (a pyenv shim, a virtualenv).
    system = '/usr/bin/python3'
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
        os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)
    print('SKIP: numpy/scipy not available (%s): install python3-numpy python3-scipy (tools/deps.sh)' % e)
    sys.exit(77)

try:
    from statsmodels.stats.multitest import multipletests
except ImportError:
    multipletests = None

REL = 1e-9
REL_P = 1e-6
failures = []
deviation = {}
counts = {}


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 40:
            print('FAIL: ' + what)


def close(key, got, want, rel, scale=0.0, what=''):
    """Compare with a relative tolerance (and an absolute floor of 1e-15 times the data's scale)."""
    if want is None or (isinstance(want, float) and math.isnan(want)):
        check(got is None, '%s %s: got %r, want not available' % (what, key, got))
        return
    if got is None:
        check(False, '%s %s: got null, want %r' % (what, key, want))
        return
    diff = abs(got - want)
    d = diff / abs(want) if want != 0 else diff
    deviation[key] = max(deviation.get(key, 0.0), d)
    check(d <= rel or diff <= 1e-15 * scale, '%s %s: got %r, want %r (relative %.3g)' % (what, key, got, want, d))


def fmt(values):
    return ' '.join(repr(float(v)) for v in values)


# ---- data sets ----

rng = np.random.default_rng(20261204)


def sample(kind, n):
    if kind == 'normal':
        return rng.normal(0.0, 1.0, n)
    if kind == 'normal-offset':
        return rng.normal(1000.0, 5.0, n)
    if kind == 'lognormal':
        return rng.lognormal(10.0, 1.0, n)
    if kind == 'ties':
        return rng.integers(0, 4, n).astype(float)
    if kind == 'ties-wide':
        return (rng.integers(0, 12, n) * 1000).astype(float)
    if kind == 'equal':
        return np.full(n, 42.0)
    raise ValueError(kind)


KINDS = ['normal', 'normal-offset', 'lognormal', 'ties', 'ties-wide', 'equal']


def repeats(n):
    return 12 if n < 10 else 3


summaries = []
for n in range(1, 41):
    for kind in KINDS:
        for _ in range(repeats(n) if kind != 'equal' else 1):
            summaries.append(sample(kind, n))
summaries += [np.array(v, dtype=float) for v in ([1, 2, 3, 4, 5, 6], [5.0], [-3.0, 3.0], [1e300, -1e300, 0.0])]

pairs = []
for nx in range(1, 41):
    for ny in sorted({1, 2, 3, 5, 7, 8, 9, 12, 20, 40, nx}):
        if nx >= 10 and ny >= 10 and (nx + ny) % 3:
            continue        # fewer large-large pairs, every small one
        for kind in ['normal', 'lognormal', 'ties', 'ties-wide']:
            x = sample(kind, nx)
            y = sample(kind, ny) + (0.5 if kind == 'normal' and (nx + ny) % 2 else 0.0)
            pairs.append((x, y))
pairs.append((np.full(5, 3.0), np.full(4, 3.0)))                  # every value equal: sigma = 0
pairs.append((np.arange(8.0), np.arange(8.0) + 100))             # complete separation, exact
pairs.append((np.arange(9.0), np.arange(9.0) + 100))             # complete separation, asymptotic

holms = []
for m in range(1, 21):
    for _ in range(5):
        p = rng.uniform(0, 0.2, m)
        if m > 3:
            p[1] = p[0]                                       # ties
            p[-1] = 1.0
        holms.append(p)
holms.append(np.array([0.0, 0.0, 1.0, 0.5]))

boots = []
for i, (nx, ny) in enumerate([(1, 1), (2, 3), (5, 5), (6, 9), (10, 10), (3, 20), (20, 7), (40, 40)]):
    for kind in ['lognormal', 'ties-wide-positive', 'normal-offset']:
        if kind == 'ties-wide-positive':
            x, y = sample('ties-wide', nx) + 1000.0, sample('ties-wide', ny) + 1000.0
        else:
            x, y = sample(kind, nx), sample(kind, ny)
        boots.append((x, y, 1000 + i, 300))

RNG_CASES = [(0, 6, 0), (1, 6, 0), (2 ** 64 - 1, 4, 0), (7, 20, 3), (7, 20, 10), (12345, 20, 2 ** 63 + 5)]

# ---- run stats-dump ----

requests = []
for x in summaries:
    requests.append('summary %d %s' % (len(x), fmt(x)))
for x, y in pairs:
    requests.append('compare %d %d %s %s' % (len(x), len(y), fmt(x), fmt(y)))
for p in holms:
    requests.append('holm %d %s' % (len(p), fmt(p)))
for x, y, seed, b in boots:
    requests.append('boot %d %d %d %d %s %s' % (len(x), len(y), seed, b, fmt(x), fmt(y)))
for seed, count, below in RNG_CASES:
    requests.append('rng %d %d %d' % (seed, count, below))

proc = subprocess.run([sys.argv[1]], input='\n'.join(requests) + '\n', capture_output=True, text=True, timeout=600)
if proc.returncode != 0:
    print('stats-dump failed (%d): %s' % (proc.returncode, proc.stderr))
    sys.exit(1)
replies = [json.loads(line) for line in proc.stdout.splitlines()]
if len(replies) != len(requests):
    print('stats-dump answered %d of %d requests' % (len(replies), len(requests)))
    sys.exit(1)
replies = iter(replies)

# ---- summaries ----

for x in summaries:
    got = next(replies)
    n = len(x)
    what = 'summary n=%d %s' % (n, fmt(x[:4]))
    scale = float(np.max(np.abs(x)))
    check(got.get('n') == n, what + ': n')
    close('min', got['min'], float(np.min(x)), REL, scale, what)
    close('max', got['max'], float(np.max(x)), REL, scale, what)
    if scale < 1e299:       # numpy's mean of ±1e300 overflows; the compensated sum does not
        close('mean', got['mean'], float(np.mean(x)), REL, scale, what)
        close('std', got['std'], float(np.std(x, ddof=1)) if n >= 2 else None, REL, scale, what)
    close('median', got['median'], float(np.median(x)), REL, scale, what)
    p5, p95 = np.percentile(x, [5, 95])
    close('p5', got['p5'], float(p5), REL, scale, what)
    close('p95', got['p95'], float(p95), REL, scale, what)

    lo = 0
    for k in range(1, (n + 1) // 2 + 1):
        if 1 - 2 * scipy.stats.binom.cdf(k - 1, n, 0.5) >= 0.95:
            lo = k
    s = np.sort(x)
    if lo == 0:
        check(n < 6, what + ': scipy finds no 95 %% interval for n >= 6')
        check(got['ci_low_rank'] == 0 and got['ci_low'] is None and got['ci_coverage'] is None,
              what + ': CI should be not available')
    else:
        check(got['ci_low_rank'] == lo and got['ci_high_rank'] == n + 1 - lo,
              what + ': CI ranks %r %r, want %d %d' % (got['ci_low_rank'], got['ci_high_rank'], lo, n + 1 - lo))
        close('ci_low', got['ci_low'], float(s[lo - 1]), REL, scale, what)
        close('ci_high', got['ci_high'], float(s[n - lo]), REL, scale, what)
        close('ci_coverage', got['ci_coverage'], float(1 - 2 * scipy.stats.binom.cdf(lo - 1, n, 0.5)), REL, 0, what)
counts['summary'] = len(summaries)

# ---- Mann-Whitney and Cliff's delta ----

methods = {'exact': 0, 'asymptotic': 0}
for x, y in pairs:
    got = next(replies)
    what = 'compare nx=%d ny=%d %s | %s' % (len(x), len(y), fmt(x[:3]), fmt(y[:3]))
    res = scipy.stats.mannwhitneyu(x, y, alternative='two-sided', method='auto')
    xy = np.concatenate([x, y])
    ties = len(np.unique(xy)) != len(xy)
    want_method = 'asymptotic' if (len(x) > 8 and len(y) > 8) or ties else 'exact'
    methods[want_method] += 1
    check(got['method'] == want_method, what + ': method %s, scipy uses %s' % (got['method'], want_method))
    check(got['ties'] == ties, what + ': ties')
    close('mwu_u1', got['u1'], float(res.statistic), REL, 0, what)
    close('mwu_u2', got['u2'], float(len(x) * len(y) - res.statistic), REL, 0, what)
    close('mwu_p', got['p'], float(res.pvalue), REL_P, 0, what)
    gt = int(np.sum(x[:, None] > y[None, :]))
    lt = int(np.sum(x[:, None] < y[None, :]))
    close('cliffs_delta', got['cliffs_delta'], (gt - lt) / (len(x) * len(y)), 1e-12, 0, what)
counts['compare'] = len(pairs)


# ---- Holm ----

def holm_direct(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    adj = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, (m - k) * p[i])
        adj[i] = min(1.0, running)
    return adj


for p in holms:
    got = next(replies)['adjusted']
    want = multipletests(p, method='holm')[1] if multipletests else holm_direct(list(p))
    for g, w in zip(got, want):
        close('holm', g, float(w), REL, 0, 'holm m=%d' % len(p))
    # monotone in the order of the raw p-values
    order = np.argsort(p, kind='stable')
    check(all(got[order[i]] <= got[order[i + 1]] for i in range(len(p) - 1)), 'holm not monotone')
counts['holm'] = len(holms)

# ---- the generator and the bootstrap ----

M64 = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        self.s = []
        sm = seed
        for _ in range(4):
            sm = (sm + 0x9e3779b97f4a7c15) & M64
            z = sm
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s

        def rotl(v, k):
            return ((v << k) | (v >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        threshold = (1 << 64) % n
        while True:
            r = self.next()
            if r >= threshold:
                return r % n


for x, y, seed, b in boots:
    got = next(replies)
    what = 'boot nx=%d ny=%d seed=%d' % (len(x), len(y), seed)
    r = Rng(seed)
    ratios = []
    for _ in range(b):
        xs = np.array([x[r.below(len(x))] for _ in range(len(x))])
        ys = np.array([y[r.below(len(y))] for _ in range(len(y))])
        ratios.append(np.median(ys) / np.median(xs))
    low, high = np.percentile(np.array(ratios), [2.5, 97.5])
    check(got['seed'] == seed and got['resamples'] == b, what + ': seed/resamples echoed')
    close('boot_ratio', got['ratio'], float(np.median(y) / np.median(x)), REL, 0, what)
    close('boot_low', got['low'], float(low), REL, 0, what)
    close('boot_high', got['high'], float(high), REL, 0, what)
counts['boot'] = len(boots)

for seed, count, below in RNG_CASES:
    got = next(replies)['draws']
    r = Rng(seed)
    want = [r.below(below) if below else r.next() for _ in range(count)]
    check(got == want, 'rng seed=%d below=%d: %r, want %r' % (seed, below, got[:3], want[:3]))
counts['rng'] = len(RNG_CASES)

print('numpy %s, scipy %s, Holm reference: %s' % (np.__version__, scipy.__version__,
                                                  'statsmodels' if multipletests else 'direct'))
print('data sets: %s; Mann-Whitney methods (scipy auto): %s' % (counts, methods))
for key in sorted(deviation):
    print('  max relative deviation %-13s %.3g' % (key, deviation[key]))
if failures:
    print('%d failure(s)' % len(failures))
    sys.exit(1)
print('ok')
