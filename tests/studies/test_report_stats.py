"""Tests for studies.report: intervals and paired tests against hand computations, the
task comparison's ranking, Holm family and sentences, and performance profiles."""

import math
import re
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from studies.report import (
    ArmOutcome,
    compare_arms,
    format_p,
    holm,
    mcnemar,
    median_interval,
    min_values_for_interval,
    performance_profile,
    ratio_of_medians,
    wilcoxon,
    wilson,
)
from studies.report.compare import hodges_lehmann

# --- Wilson ----------------------------------------------------------------------------


def test_wilson_matches_the_closed_form() -> None:
    successes, trials = 8, 10
    z = NormalDist().inv_cdf(0.975)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z / (1 + z**2 / trials) * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2))
    interval = wilson(successes, trials)
    assert interval.estimate == 0.8
    assert interval.low == pytest.approx(centre - half, abs=1e-12)
    assert interval.high == pytest.approx(centre + half, abs=1e-12)
    assert interval.confidence == 0.95


def test_wilson_at_no_and_all_successes_stays_inside_zero_one() -> None:
    none, every = wilson(0, 10), wilson(10, 10)
    assert none.low == 0.0 and 0 < (none.high or 0) < 0.5
    assert every.high == pytest.approx(1.0) and 0.5 < (every.low or 0) < 1


@pytest.mark.parametrize(("successes", "trials"), [(3, 2), (-1, 5), (0, 0)])
def test_wilson_rejects_impossible_counts(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match="Invalid success count"):
        wilson(successes, trials)


# --- medians and ratios ----------------------------------------------------------------


@pytest.mark.parametrize(("confidence", "needed"), [(0.9, 5), (0.95, 6), (0.99, 8)])
def test_min_values_for_interval_is_where_the_range_can_cover_the_median(
        confidence: float, needed: int) -> None:
    assert min_values_for_interval(confidence) == needed
    assert 1 - 2 * 0.5**needed >= confidence > 1 - 2 * 0.5**(needed - 1)


def test_median_interval_brackets_the_median_and_is_reproducible() -> None:
    values = [12, 15, 11, 30, 14, 13, 18, 12, 16, 25, 13, 14]
    interval = median_interval(values, seed=3)
    assert interval.estimate == 14.0
    assert interval.low is not None and interval.high is not None
    assert min(values) <= interval.low <= 14.0 <= interval.high <= max(values)
    assert median_interval(values, seed=3) == interval


def test_median_interval_of_a_constant_sample_has_zero_width() -> None:
    interval = median_interval([7] * 10)
    assert (interval.low, interval.estimate, interval.high) == (7.0, 7.0, 7.0)


def test_median_interval_of_zero_one_values_does_not_crash() -> None:
    interval = median_interval([0, 1] * 8 + [1])
    assert interval.estimate == 1.0
    assert interval.low == 0.0 and interval.high == 1.0


def test_median_interval_with_too_few_values_gives_the_estimate_alone() -> None:
    assert median_interval([]).estimate is None
    single = median_interval([9])
    assert (single.low, single.estimate, single.high) == (None, 9.0, None)
    five = median_interval([1, 2, 3, 4, 5])
    assert five.estimate == 3.0 and not five.has_interval
    assert "at least 6" in five.method


def test_ratio_interval_contains_the_true_ratio() -> None:
    rng = np.random.default_rng(7)
    fast = rng.integers(10, 100, size=40)
    slow = 2 * fast + rng.integers(-2, 3, size=40)  # ratio 2 up to symmetric noise
    interval = ratio_of_medians(fast.tolist(), slow.tolist())
    assert interval.low is not None and interval.high is not None
    assert interval.low <= 2.0 <= interval.high
    assert interval.high - interval.low < 0.3
    assert interval.estimate == pytest.approx(np.median(slow) / np.median(fast))


def test_ratio_of_an_exact_multiple_has_zero_width() -> None:
    interval = ratio_of_medians([3, 5, 8, 13, 21, 34], [6, 10, 16, 26, 42, 68])
    assert (interval.low, interval.estimate, interval.high) == (2.0, 2.0, 2.0)


def test_ratio_with_too_few_pairs_gives_no_interval_and_says_so() -> None:
    interval = ratio_of_medians([10, 12, 14], [30, 36, 42])
    assert interval.estimate == 3.0 and not interval.has_interval
    assert interval.method == "none: only 3 paired values, an interval needs at least 6"
    assert ratio_of_medians([], []).estimate is None


def test_ratio_rejects_unpaired_or_non_positive_values() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ratio_of_medians([1, 2], [1])
    with pytest.raises(ValueError, match="positive"):
        ratio_of_medians([0, 2], [1, 2])


# --- paired tests ----------------------------------------------------------------------


def test_mcnemar_is_the_exact_binomial_test_on_discordant_seeds() -> None:
    # 7 seeds only a converged, 1 only b, 4 both, 3 neither
    a = [True] * 7 + [False] + [True] * 4 + [False] * 3
    b = [False] * 7 + [True] + [True] * 4 + [False] * 3
    test = mcnemar(a, b)
    # two-sided: P(X <= 1) + P(X >= 7) for X ~ Binomial(8, 1/2) = 2 * (1 + 8) / 2**8
    assert test.p_value == pytest.approx(18 / 256)
    assert (test.statistic, test.n) == (7.0, 8)


def test_mcnemar_without_discordant_seeds_is_not_testable() -> None:
    test = mcnemar([True, False, True], [True, False, True])
    assert not test.testable and test.p_value == 1.0 and test.n == 0


def test_wilcoxon_matches_scipy_with_pratt_zeros() -> None:
    a = [10, 12, 15, 11, 20, 14, 13, 16]
    b = [14, 12, 21, 15, 26, 13, 19, 16]  # two zero differences, tied ranks
    expected = stats.wilcoxon(a, b, zero_method="pratt")
    test = wilcoxon(a, b)
    assert test.statistic == expected.statistic
    assert test.p_value == expected.pvalue
    assert test.n == 8 and "Pratt" in test.method


@pytest.mark.parametrize(("a", "b"), [([], []), ([5], [9]), ([5, 6, 7], [5, 6, 8])])
def test_wilcoxon_with_fewer_than_two_differences_is_not_testable(
        a: list[int], b: list[int]) -> None:
    test = wilcoxon(a, b)
    assert not test.testable and test.p_value == 1.0


def test_holm_on_the_textbook_example() -> None:
    # Holm-Bonferroni example (Wikipedia): p = 0.01, 0.04, 0.03, 0.005 with m = 4.
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; the running
    # maximum makes the last 0.06. At alpha = 0.05 H4 and H1 are rejected, H2 and H3 not.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_accepts_an_empty_family() -> None:
    assert holm([0.5, 0.4, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])


@pytest.mark.parametrize(("p", "text"), [(0.0004, "p < 0.001"), (0.004, "p = 0.004"),
                                         (0.6249, "p = 0.62"), (0.999, "p = 1"),
                                         (1.0, "p = 1")])
def test_format_p(p: float, text: str) -> None:
    assert format_p(p) == text


# --- comparing arms --------------------------------------------------------------------

SEEDS = 32
BASE = [20 + (7 * i) % 23 for i in range(SEEDS)]  # varied epochs, fixed for the tests


def _arm(converged: list[bool], epochs: list[int], max_epochs: int = 1000) -> ArmOutcome:
    return ArmOutcome(converged=converged, epochs=epochs, max_epochs=max_epochs)


def test_sentences_name_the_better_arm_first_with_its_numbers() -> None:
    irprop = _arm([True] * SEEDS, BASE)
    momentum = _arm([i % 8 != 0 for i in range(SEEDS)], [3 * e for e in BASE])
    comparison = compare_arms("xor", {"momentum": momentum, "iRprop+": irprop},
                              "SSE < 0.001")
    assert comparison.best == "iRprop+"
    assert [arm.name for arm in comparison.arms] == ["iRprop+", "momentum"]
    lines = comparison.sentences()
    assert lines[0] == ("Best on xor: iRprop+ (ranked by success rate, then by median epochs "
                        "to SSE < 0.001).")
    assert lines[1].startswith("iRprop+ reaches SSE < 0.001 on 32 of 32 seeds within 1000 "
                               "epochs (100%, 95% CI 89–100%); median ")
    pair = comparison.pairs[0]
    # 4 discordant seeds, all won by iRprop+: p = 2 / 2**4; Holm over the 2 tests leaves the
    # larger p-value (the last step multiplies it by 1) as it is
    assert pair.success_test.p_value == pytest.approx(0.125)
    assert pair.success_p == pytest.approx(0.125)
    assert lines[3] == ("No significant difference in success rate between iRprop+ and "
                        "momentum: 100% vs 88% of 32 seeds (McNemar p = 0.12, Holm-corrected).")
    assert lines[4] == ("iRprop+ reaches SSE < 0.001 in 3.0× fewer epochs than momentum "
                        "(95% CI 3.0–3.0, Wilcoxon p < 0.001, Holm-corrected; 28 of 32 seeds "
                        "converged in both).")


def test_a_significant_success_difference_is_stated_plainly() -> None:
    good = _arm([True] * SEEDS, BASE)
    poor = _arm([i < 19 for i in range(SEEDS)], BASE)
    lines = compare_arms("xor", {"Adam": poor, "iRprop+": good}, "SSE < 0.001").sentences()
    # 13 discordant seeds, all for iRprop+: p = 2 / 2**13 (a single testable test)
    assert lines[3] == ("iRprop+ converges more often than Adam: 100% vs 59% of 32 seeds "
                        "(McNemar p < 0.001, Holm-corrected).")
    assert lines[4] == ("iRprop+ and Adam reach SSE < 0.001 in exactly the same number of "
                        "epochs on every seed where both converged (19 of 32 seeds converged "
                        "in both).")


def test_the_faster_arm_leads_the_epochs_sentence_even_when_ranked_lower() -> None:
    rng = np.random.default_rng(1)
    reliable = _arm([True] * SEEDS, [2 * e + int(rng.integers(0, 3)) for e in BASE])
    quick = _arm([i != 5 for i in range(SEEDS)], BASE)
    comparison = compare_arms("parity-4", {"quick": quick, "reliable": reliable}, "MSE < 0.01")
    assert comparison.best == "reliable"
    pair = comparison.pairs[0]
    assert (pair.first, pair.faster, pair.slower) == ("reliable", "quick", "reliable")
    assert pair.ratio is not None and pair.ratio.low is not None
    assert pair.ratio.high is not None and pair.ratio.estimate is not None
    expected = (f"quick reaches MSE < 0.01 in {pair.ratio.estimate:.1f}× fewer epochs than "
                f"reliable (95% CI {pair.ratio.low:.1f}–{pair.ratio.high:.1f}, Wilcoxon "
                f"p < 0.001, Holm-corrected; 31 of 32 seeds converged in both).")
    assert comparison.sentences()[4] == expected


def test_holm_family_is_every_testable_test_of_the_task() -> None:
    rng = np.random.default_rng(5)
    arms = {name: _arm(list(rng.random(SEEDS) < rate),
                       [int(e * scale) + int(rng.integers(0, 4)) for e in BASE])
            for name, rate, scale in [("a", 0.9, 1.0), ("b", 0.7, 1.3), ("c", 0.5, 1.1)]}
    comparison = compare_arms("xor", arms, "SSE < 0.001")
    assert len(comparison.pairs) == 3
    tests = [(pair, kind) for pair in comparison.pairs for kind in ("success", "epochs")]
    raw = [getattr(pair, f"{kind}_test").p_value for pair, kind in tests]
    adjusted = [getattr(pair, f"{kind}_p") for pair, kind in tests]
    assert all(getattr(pair, f"{kind}_test").testable for pair, kind in tests)
    assert adjusted == pytest.approx(holm(raw))
    ranked = [arm.name for arm in comparison.arms]
    assert [(pair.first, pair.second) for pair in comparison.pairs] == [
        (ranked[0], ranked[1]), (ranked[0], ranked[2]), (ranked[1], ranked[2])]


def test_identical_arms_tie_and_say_so() -> None:
    same = _arm([i % 4 != 0 for i in range(SEEDS)], BASE)
    comparison = compare_arms("xor", {"A": same, "B": same}, "SSE < 0.001")
    lines = comparison.sentences()
    assert lines[0].startswith("Best on xor: A, tied with B (")
    assert lines[3] == "A and B converge on exactly the same seeds (24 of 32)."
    assert "exactly the same number of epochs" in lines[4]
    pair = comparison.pairs[0]
    assert pair.success_p == 1.0 and pair.epochs_p == 1.0
    assert pair.ratio is not None and pair.ratio.estimate == 1.0


def test_no_successes_anywhere() -> None:
    never = _arm([False] * 10, [100] * 10, max_epochs=100)
    comparison = compare_arms("spirals", {"A": never, "B": never}, "accuracy 100%")
    arm = comparison.arms[0]
    assert arm.success.estimate == 0.0 and arm.epochs.estimate is None
    assert comparison.sentences()[1] == ("A reaches accuracy 100% on 0 of 10 seeds within 100 "
                                         "epochs (0%, 95% CI 0–28%).")
    assert comparison.sentences()[-1] == ("Epochs to accuracy 100% cannot be compared between "
                                          "A and B: no seed converged in both.")


def test_fewer_than_two_paired_seeds_cannot_be_tested() -> None:
    a = _arm([True, False, False, True], [5, 9, 9, 7], max_epochs=9)
    b = _arm([True, True, False, False], [8, 6, 9, 9], max_epochs=9)
    comparison = compare_arms("xor", {"a": a, "b": b}, "SSE < 0.1")
    pair = comparison.pairs[0]
    assert pair.paired == 1 and not pair.epochs_test.testable
    assert pair.ratio is not None and not pair.ratio.has_interval
    assert comparison.sentences()[-1] == (
        "Epochs to SSE < 0.1 cannot be tested between a and b: fewer than 2 of the seeds "
        "where both converged differ (1 of 4 seeds converged in both).")


def test_times_are_summarised_over_converged_seeds() -> None:
    times: list[float | None] = [0.1 * (i + 1) for i in range(9)] + [None]
    arm = ArmOutcome([True] * 9 + [False], list(range(1, 11)), 50, times)
    summary = compare_arms("xor", {"only": arm}, "SSE < 0.1").arms[0]
    assert summary.time_s is not None and summary.time_s.estimate == pytest.approx(0.5)
    assert summary.epochs.estimate == 5.0


def test_arms_must_share_their_seeds() -> None:
    with pytest.raises(ValueError, match="same seeds"):
        compare_arms("xor", {"a": _arm([True] * 3, [1] * 3), "b": _arm([True] * 4, [1] * 4)},
                     "SSE < 0.1")
    with pytest.raises(ValueError, match="One entry per seed"):
        _arm([True, False], [1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\]"):
        _arm([True], [11], max_epochs=10)


# --- performance profiles --------------------------------------------------------------


def test_performance_profile_by_hand() -> None:
    arms = {
        "A": _arm([True, True, True, False, False], [10, 20, 30, 99, 99]),
        "B": _arm([True, True, False, True, False], [20, 20, 10, 40, 99]),
        "C": _arm([False] * 5, [99] * 5),
    }
    # best per seed: 10, 20, 30, 40, none (seed 4 is solved by nobody)
    # ratios A: 1, 1, 1, inf, inf   B: 2, 1, inf, 1, inf   C: inf everywhere
    profile = performance_profile(arms, [1.0, 1.5, 2.0, 10.0])
    assert profile == {"A": [0.6, 0.6, 0.6, 0.6], "B": [0.4, 0.4, 0.6, 0.6],
                       "C": [0.0, 0.0, 0.0, 0.0]}


def test_performance_profile_when_the_best_needs_no_epochs() -> None:
    arms = {"A": _arm([True, True], [0, 4]), "B": _arm([True, True], [0, 8])}
    assert performance_profile(arms, [1.0, 2.0]) == {"A": [1.0, 1.0], "B": [0.5, 1.0]}


def test_small_ratios_keep_two_decimals() -> None:
    lines = compare_arms("xor", {"a": _arm([True] * SEEDS, BASE),
                                 "b": _arm([True] * SEEDS, [e + 1 for e in BASE])},
                         "SSE < 0.001").sentences()
    assert re.fullmatch(r"a reaches SSE < 0\.001 in 1\.0\d× fewer epochs than b \(95% CI "
                        r"1\.0\d–1\.0\d, Wilcoxon p < 0\.001, Holm-corrected; 32 of 32 seeds "
                        r"converged in both\)\.", lines[-1])


def test_no_speed_up_is_claimed_when_medians_and_signed_ranks_disagree() -> None:
    # A is 1 epoch faster on 16 seeds and 50 slower on 14: A's median is lower (100 vs 101),
    # but the signed ranks (and their Hodges–Lehmann shift) say B is faster.
    a, b = [100] * 16 + [60] * 14, [101] * 16 + [10] * 14
    comparison = compare_arms("t", {"A": ArmOutcome([True] * 30, a, 1000),
                                    "B": ArmOutcome([True] * 30, b, 1000)}, "SSE < 0.001")
    pair = comparison.pairs[0]
    assert pair.epochs_p < 0.05 and pair.faster == "A" and not pair.consistent
    assert hodges_lehmann(a, b) == 24.5
    sentence = comparison.sentences()[-1]
    assert "disagree on which is faster" in sentence and "fewer epochs" not in sentence
