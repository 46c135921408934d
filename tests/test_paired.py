"""Paired tests of two settings on the same seeds (`training.paired`), against values computed
by hand and a referee's figures for the 1997 adding runs."""

from __future__ import annotations

import math

import pytest

from lstm_jax.training.paired import describe, paired_test


def test_small_case_by_hand():
    # d = 2, 1, 3, 0: mean 1.5, sd √(5/3), t = 1.5 / (sd / 2) = 2.3238; Student t, 3 d.f.:
    # two-sided p = 0.1027; Wilcoxon on the non-zero 2, 1, 3 (all positive): exact p = 2/8
    test = paired_test({0: 12, 1: 11, 2: 13, 3: 10, 9: 5}, {0: 10, 1: 10, 2: 10, 3: 10})
    assert test.pairs == 4 and test.unpaired == 0  # seed 9 has no partner: not a pair at all
    assert test.mean_difference == 1.5
    assert test.t == pytest.approx(1.5 / (math.sqrt(5 / 3) / 2))
    assert test.p_t == pytest.approx(0.1027, abs=1e-4)
    assert test.p_wilcoxon == pytest.approx(0.25)
    assert (test.a_larger, test.b_larger, test.equal) == (3, 0, 1)
    half = 3.182446 * math.sqrt(5 / 3) / 2  # t_{0.975, 3} · sd / √n
    assert (test.ci_low, test.ci_high) == pytest.approx((1.5 - half, 1.5 + half), rel=1e-6)


def test_failed_runs_are_counted_apart_and_too_few_pairs_refused():
    test = paired_test({0: 5, 1: 6, 2: 8, 3: None}, {0: 4, 1: 6, 2: 7, 3: 9})
    assert (test.pairs, test.unpaired) == (3, 1)
    assert "1 seeds with a failed run left out" in describe(test, "a", "b")
    with pytest.raises(ValueError, match="at least 3 seeds where both ran, got 2"):
        paired_test({0: 1, 1: 2, 2: None}, {0: 1, 1: 3, 2: 4})


def test_the_referees_figures_for_the_1997_adding_runs():
    # sequences until the 1997 rule, seeds 0-9 (experiments/truncated_vs_full/README.md);
    # issue 32's referee: mean 4,970 (95% CI 744-9,196), t = 2.66, p = 0.026, Wilcoxon p = 0.039
    truncated = [90118, 82470, 90583, 86372, 77582, 103995, 110819, 84645, 79879, 80171]
    full = [86268, 74271, 89337, 74702, 72871, 96670, 118425, 84645, 68888, 70857]
    test = paired_test(dict(enumerate(truncated)), dict(enumerate(full)))
    assert test.mean_difference == pytest.approx(4970)
    assert (round(test.ci_low), round(test.ci_high)) == (744, 9196)
    assert (round(test.t, 2), round(test.p_t, 3), round(test.p_wilcoxon, 3)) == (2.66, 0.026, 0.039)
    assert (test.a_larger, test.b_larger, test.equal) == (8, 1, 1)
    assert test.correlation == pytest.approx(0.95, abs=0.005)
