"""Paired comparisons of two settings run on the same seeds.

Runs of two settings with the same seed see the same data and start from the same weights, so
their outcomes are paired and the right test is on the per-seed differences, not on two
independent samples (two-sample tests ignore the correlation and lose power: for the 1997
adding runs of `experiments/truncated_vs_full` the paired run lengths correlate at r = 0.95).

For the pairs in which both runs met the criterion, with `d_s = a_s − b_s`:

    mean difference  d̄ = Σ d_s / n,   95% CI  d̄ ± t_{0.975, n−1} · sd(d) / √n
    paired t         t = d̄ / (sd(d) / √n),   two-sided p from Student's t with n − 1 d.f.
    Wilcoxon signed-rank test on the non-zero d_s (exact p for small n, as scipy computes it)

and the sign counts (`a` larger, `b` larger, equal). A pair in which either run failed has no
difference and is counted apart (`unpaired`), never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from scipy import stats


class PairedTest(NamedTuple):
    """The paired comparison of `a` against `b` (differences `a − b`)."""

    pairs: int  # seeds where both runs met the criterion
    unpaired: int  # seeds where at least one did not
    mean_difference: float
    ci_low: float  # 95% t interval of the mean difference
    ci_high: float
    t: float
    p_t: float  # two-sided, paired t
    p_wilcoxon: float  # two-sided, Wilcoxon signed-rank on the non-zero differences
    a_larger: int
    b_larger: int
    equal: int
    correlation: float  # Pearson r of the paired values


def paired_test(a: Mapping[int, float | None], b: Mapping[int, float | None]) -> PairedTest:
    """Compares `a` and `b`, each `{seed: value}` (None: the run did not meet the criterion),
    over their common seeds.

    >>> t = paired_test({0: 10, 1: 12, 2: 15, 3: 11}, {0: 8, 1: 11, 2: 12, 3: 11})
    >>> t.pairs, t.mean_difference, (t.a_larger, t.b_larger, t.equal)
    (4, 1.5, (3, 0, 1))
    """
    seeds = sorted(set(a) & set(b))
    both = [s for s in seeds if a[s] is not None and b[s] is not None]
    if len(both) < 3:
        raise ValueError(f"a paired test needs at least 3 seeds where both ran, got {len(both)}")
    x = np.array([a[s] for s in both], float)
    y = np.array([b[s] for s in both], float)
    d = x - y
    n = len(d)
    sd = float(np.std(d, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    if sd == 0:  # every difference the same: no spread to test against
        t, p_t = (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    else:
        t, p_t = float(d.mean() / (sd / math.sqrt(n))), float(stats.ttest_rel(x, y).pvalue)
    nonzero = d[d != 0]
    p_w = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0
    return PairedTest(
        pairs=n,
        unpaired=len(seeds) - n,
        mean_difference=float(d.mean()),
        ci_low=float(d.mean()) - half,
        ci_high=float(d.mean()) + half,
        t=t,
        p_t=p_t,
        p_wilcoxon=p_w,
        a_larger=int(np.sum(d > 0)),
        b_larger=int(np.sum(d < 0)),
        equal=int(np.sum(d == 0)),
        correlation=float(np.corrcoef(x, y)[0, 1]) if np.std(x) and np.std(y) else math.nan,
    )


def describe(test: PairedTest, a: str, b: str, unit: str = "") -> str:
    """One line: the mean difference with its CI, both p-values and the sign counts.

    >>> test = paired_test({0: 100, 1: 120, 2: 150}, {0: 80, 1: 110, 2: 120})
    >>> describe(test, "truncated", "full").split(";")[0]
    'truncated − full: mean 20 (95% CI -5 to 45), paired t = 3.46, p = 0.074'
    """
    unit = f" {unit}" if unit else ""
    left = f" ({test.unpaired} seeds with a failed run left out)" if test.unpaired else ""
    return (
        f"{a} − {b}: mean {test.mean_difference:,.0f}{unit} (95% CI {test.ci_low:,.0f} to "
        f"{test.ci_high:,.0f}), paired t = {test.t:.2f}, p = {test.p_t:.3f}; Wilcoxon "
        f"p = {test.p_wilcoxon:.3f}; {a} larger in {test.a_larger}, {b} in {test.b_larger}, "
        f"equal in {test.equal} of {test.pairs} pairs (r = {test.correlation:.2f}){left}"
    )
