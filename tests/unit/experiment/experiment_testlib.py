# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared by the python cross-checks of src/experiment (test-experiment-summary-numpy.py,
test-experiment-export-pandas.py): the failures found so far, and experiment_counter_unit() written again from
memvisor.experiment(5) (RESULTS), independent of the C code. Stdlib only."""

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 40:
            print('FAIL: ' + what)


def unit(name):
    """experiment_counter_unit(), written again from the page."""
    if name.endswith('_usec'):
        return 'us'
    if name.endswith('_ns'):
        return 'ns'
    if name.endswith('bytes_per_sec'):
        return 'bytes/s'
    if name.endswith('_bytes') or name.endswith('.bytes') or name == 'bytes':
        return 'bytes'
    if name.endswith('_pages') or name.endswith('.pages') or name == 'pages':
        return 'pages'
    last = name.rsplit('.', 1)[-1]
    if last.startswith('bytes_'):
        return 'bytes'
    if last.startswith('pages_'):
        return 'pages'
    return 'count'
