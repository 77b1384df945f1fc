"""Calibration of studies.report on synthetic data with known answers: intervals cover the
truth at their stated rate, tests reject a real difference and accept no difference at
theirs, Holm controls the family-wise error rate, and compare_arms' verdicts follow.

Every check counts hits over independent simulated replicates, so the count is Binomial(reps,
rate) where ``rate`` is the procedure's true rate. A claim "the true rate lies in [low, high]"
is accepted when the count lies in the binomial acceptance region [``binom.ppf(TAIL, reps,
low)``, ``binom.isf(TAIL, reps, high)``]: a procedure meeting the claim lands outside it with
probability below TAIL on each side, whatever the seed. The seeds are fixed, so the tests are
deterministic; `test_the_bands_reject_wrong_procedures` shows the same bands fail procedures
that are wrong (a 50% interval, a too-wide one, no multiplicity correction, a test that
ignores the pairing).

Bootstrap coverage runs with fewer resamples than the reports use (BOOTSTRAP_RESAMPLES):
the resample count only adds Monte Carlo noise to the interval's ends, not bias to its
coverage, and 9999 resamples per replicate would take minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

import studies.report.stats as report_stats
from studies.report import (
    ArmOutcome,
    Interval,
    compare_arms,
    holm,
    mcnemar,
    median_interval,
    ratio_of_medians,
    wilcoxon,
    wilson,
)

ALPHA = 0.05
CONFIDENCE = 1 - ALPHA
TAIL = 1e-3
"""Chance that a procedure meeting its claim fails one side of a band."""
FEW_RESAMPLES = 999


def _lowest(reps: int, rate: float) -> int:
    """The fewest hits in ``reps`` consistent with a true rate of at least ``rate``."""
    return int(stats.binom.ppf(TAIL, reps, rate))


def _highest(reps: int, rate: float) -> int:
    """The most hits in ``reps`` consistent with a true rate of at most ``rate``."""
    return int(stats.binom.isf(TAIL, reps, rate))


def _consistent(hits: int, reps: int, low: float, high: float) -> bool:
    """Whether ``hits`` of ``reps`` is consistent with a true rate in [low, high]."""
    return _lowest(reps, low) <= hits <= _highest(reps, high)


def _covers(interval: Interval, truth: float) -> bool:
    assert interval.low is not None and interval.high is not None, interval.method
    return interval.low <= truth <= interval.high


@pytest.fixture
def few_resamples(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(report_stats, "BOOTSTRAP_RESAMPLES", FEW_RESAMPLES)
    yield


# --- Wilson ----------------------------------------------------------------------------

WILSON_REPS = 20_000
WILSON_CLAIM = (0.92, 0.98)
"""Wilson's 95% coverage oscillates with n and p around the nominal rate, within about
three points of it away from p near 0 or 1 (Brown, Cai & DasGupta 2001, Statist. Sci.
16:101-133, fig. 5); `test_wilson_exact_coverage_is_within_the_claim` checks it here."""
WILSON_POINTS = [(10, 0.5), (20, 0.1), (40, 0.2), (40, 0.5), (100, 0.05), (100, 0.5)]


def _wilson_covers(n: int, p: float, confidence: float) -> NDArray[np.bool_]:
    """Whether the interval from k successes covers p, for k = 0..n."""
    return np.array([_covers(wilson(k, n, confidence), p) for k in range(n + 1)])


def _wilson_hits(n: int, p: float, confidence: float, seed: int) -> int:
    successes = np.random.default_rng(seed).binomial(n, p, size=WILSON_REPS)
    return int(_wilson_covers(n, p, confidence)[successes].sum())


@pytest.mark.parametrize(("n", "p"), WILSON_POINTS)
def test_wilson_exact_coverage_is_within_the_claim(n: int, p: float) -> None:
    exact = float(stats.binom.pmf(np.arange(n + 1), n, p)[_wilson_covers(n, p, CONFIDENCE)]
                  .sum())
    assert WILSON_CLAIM[0] <= exact <= WILSON_CLAIM[1]


@pytest.mark.parametrize(("n", "p"), WILSON_POINTS)
def test_wilson_covers_at_the_nominal_rate(n: int, p: float) -> None:
    hits = _wilson_hits(n, p, CONFIDENCE, seed=n * 1000 + int(p * 100))
    assert _consistent(hits, WILSON_REPS, *WILSON_CLAIM), hits / WILSON_REPS


# --- bootstrap intervals ---------------------------------------------------------------

BOOTSTRAP_CLAIM = (0.93, 0.98)
"""The percentile bootstrap's coverage of a median is close to nominal from about 20 values
on; the paired ratio of medians is somewhat conservative when the pairs are correlated."""


def _median_hits(sample: Callable[[np.random.Generator], NDArray[np.float64]], truth: float,
                 reps: int, confidence: float, seed: int) -> int:
    rng = np.random.default_rng(seed)
    return sum(_covers(median_interval(sample(rng).tolist(), confidence, seed=r), truth)
               for r in range(reps))


def _exponential(rng: np.random.Generator) -> NDArray[np.float64]:
    return rng.exponential(size=25)


EPOCHS = stats.nbinom(5, 0.1)  # integer, skewed, with ties: like epochs to target
"""Median 42."""


def _epochs(rng: np.random.Generator) -> NDArray[np.float64]:
    return np.asarray(EPOCHS.rvs(size=25, random_state=rng), dtype=float)


@pytest.mark.usefixtures("few_resamples")
@pytest.mark.parametrize(("sample", "truth", "reps"), [
    pytest.param(_exponential, float(np.log(2)), 800, id="exponential"),
    pytest.param(_epochs, float(EPOCHS.median()), 400, id="integer-epochs"),
])
def test_median_interval_covers_at_the_nominal_rate(
        sample: Callable[[np.random.Generator], NDArray[np.float64]], truth: float,
        reps: int) -> None:
    hits = _median_hits(sample, truth, reps, CONFIDENCE, seed=11)
    assert _consistent(hits, reps, *BOOTSTRAP_CLAIM), hits / reps


@pytest.mark.usefixtures("few_resamples")
def test_ratio_of_medians_covers_the_true_ratio() -> None:
    # Seed i has a shared difficulty z_i (correlation 0.5 between the arms' log epochs);
    # exp(z + noise) has median exp(0) = 1 for either arm, so median(b) / median(a) = 2.
    rng = np.random.default_rng(12)
    reps, n, truth = 500, 25, 2.0
    hits = 0
    for r in range(reps):
        z = rng.normal(size=n)
        a = np.exp(z + rng.normal(size=n))
        b = truth * np.exp(z + rng.normal(size=n))
        hits += _covers(ratio_of_medians(a.tolist(), b.tolist(), CONFIDENCE, seed=r), truth)
    assert _consistent(hits, reps, *BOOTSTRAP_CLAIM), hits / reps


# --- McNemar ---------------------------------------------------------------------------


def _mcnemar_exact_rate(seeds: int, only_a: float, only_b: float) -> float:
    """The exact rejection rate at ALPHA of McNemar's exact test on ``seeds`` paired seeds
    where only a converges with probability ``only_a`` and only b with ``only_b``: sum over
    the discordant count d ~ Binomial(seeds, only_a + only_b) and a's share k of it ~
    Binomial(d, only_a / (only_a + only_b)), rejecting where twice the smaller tail of
    Binomial(d, 1/2) at k is below ALPHA."""
    discordant = only_a + only_b
    rate = 0.0
    for d in range(1, seeds + 1):
        k = np.arange(d + 1)
        p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(k, d - k), d, 0.5))
        rate += float(stats.binom.pmf(d, seeds, discordant)
                      * stats.binom.pmf(k, d, only_a / discordant)[p < ALPHA].sum())
    return rate


def _mcnemar_rejections(seeds: int, only_a: float, only_b: float, reps: int,
                        seed: int) -> int:
    rng = np.random.default_rng(seed)
    # outcome per seed: 0 both converge, 1 only a, 2 only b, 3 neither
    outcome = rng.choice(4, size=(reps, seeds), p=[1 - only_a - only_b - 0.1, only_a,
                                                   only_b, 0.1])
    a_converged, b_converged = np.isin(outcome, (0, 1)), np.isin(outcome, (0, 2))
    return sum(mcnemar(a.tolist(), b.tolist()).p_value < ALPHA
               for a, b in zip(a_converged, b_converged, strict=True))


MCNEMAR_REPS = 1500


def test_mcnemar_rejects_no_difference_at_most_at_alpha() -> None:
    exact = _mcnemar_exact_rate(40, 0.15, 0.15)
    assert exact <= ALPHA  # the exact test is conservative: about 0.024 here
    rejections = _mcnemar_rejections(40, 0.15, 0.15, MCNEMAR_REPS, seed=21)
    assert rejections <= _highest(MCNEMAR_REPS, ALPHA)
    assert _consistent(rejections, MCNEMAR_REPS, exact, exact)


def test_mcnemar_detects_a_real_difference() -> None:
    # 60 seeds; only a converges on 30% of them, only b on 5%
    exact = _mcnemar_exact_rate(60, 0.30, 0.05)
    assert exact >= 0.80
    rejections = _mcnemar_rejections(60, 0.30, 0.05, MCNEMAR_REPS, seed=22)
    assert rejections >= _lowest(MCNEMAR_REPS, 0.80)
    assert _consistent(rejections, MCNEMAR_REPS, exact, exact)


# --- Wilcoxon --------------------------------------------------------------------------

WILCOXON_REPS = 800


def _continuous_pairs(rng: np.random.Generator, n: int,
                      shift: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A seed effect shared by both arms plus noise; b - a ~ Normal(shift, 1)."""
    z = rng.normal(size=n)
    return z + rng.normal(size=n) / np.sqrt(2), z + shift + rng.normal(size=n) / np.sqrt(2)


def _epoch_pairs(rng: np.random.Generator, n: int,
                 ratio: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Integer epochs with a shared seed difficulty: ties and zero differences occur."""
    difficulty = rng.gamma(4, 10, size=n)
    return (rng.poisson(difficulty).astype(float),
            rng.poisson(ratio * difficulty).astype(float))


Pairs = Callable[[np.random.Generator, int, float],
                 tuple[NDArray[np.float64], NDArray[np.float64]]]


def _wilcoxon_rejections(pairs: Pairs, n: int, effect: float, reps: int, seed: int,
                         keep_pairing: bool = True) -> int:
    rng = np.random.default_rng(seed)
    rejections = 0
    for _ in range(reps):
        a, b = pairs(rng, n, effect)
        if not keep_pairing:
            b = rng.permutation(b)
        rejections += wilcoxon(a.tolist(), b.tolist()).p_value < ALPHA
    return rejections


@pytest.mark.parametrize(("pairs", "n"), [
    pytest.param(_continuous_pairs, 20, id="continuous-exact"),
    pytest.param(_epoch_pairs, 30, id="integer-epochs-pratt-normal"),
])
def test_wilcoxon_rejects_no_difference_at_most_at_alpha(pairs: Pairs, n: int) -> None:
    no_effect = 0.0 if pairs is _continuous_pairs else 1.0
    rejections = _wilcoxon_rejections(pairs, n, no_effect, WILCOXON_REPS, seed=31)
    assert rejections <= _highest(WILCOXON_REPS, ALPHA), rejections / WILCOXON_REPS


def _t_test_power(pairs: float, effect: float) -> float:
    """The two-sided paired t-test's power at ALPHA for differences ~ Normal(effect, 1)."""
    df = pairs - 1
    critical = stats.t.isf(ALPHA / 2, df)
    noncentrality = effect * np.sqrt(pairs)
    return float(stats.nct.sf(critical, df, noncentrality)
                 + stats.nct.cdf(-critical, df, noncentrality))


WILCOXON_N, WILCOXON_SHIFT = 30, 0.7
WILCOXON_POWER = _t_test_power(WILCOXON_N * 3 / np.pi, WILCOXON_SHIFT)
"""On normal data the signed-rank test is as efficient as the t-test on 3/pi as many pairs
(Pitman efficiency): 0.95 at 30 pairs and a shift of 0.7 standard deviations."""


def test_wilcoxon_detects_a_shift_in_continuous_pairs() -> None:
    assert WILCOXON_POWER > 0.94
    rejections = _wilcoxon_rejections(_continuous_pairs, WILCOXON_N, WILCOXON_SHIFT,
                                      WILCOXON_REPS, seed=32)
    assert rejections >= _lowest(WILCOXON_REPS, WILCOXON_POWER), rejections / WILCOXON_REPS


def test_wilcoxon_detects_twenty_percent_more_epochs() -> None:
    rejections = _wilcoxon_rejections(_epoch_pairs, 30, 1.2, 400, seed=33)
    assert rejections >= _lowest(400, 0.95), rejections / 400


# --- Holm ------------------------------------------------------------------------------

HOLM_REPS, HOLM_M = 10_000, 10


def _p_values(rng: np.random.Generator, shifts: NDArray[np.float64],
              correlation: float = 0.0) -> NDArray[np.float64]:
    """Two-sided p-values of z-tests with the given true shifts, equicorrelated."""
    shared = rng.normal(size=(HOLM_REPS, 1))
    own = rng.normal(size=(HOLM_REPS, shifts.size))
    z = np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * own + shifts
    return np.asarray(2 * stats.norm.sf(np.abs(z)))


def _family_errors(p_values: NDArray[np.float64], true_null: NDArray[np.bool_],
                   adjust: Callable[[list[float]], list[float]]) -> int:
    """Families where a true null hypothesis is rejected after ``adjust``."""
    rejected = np.array([adjust(row.tolist()) for row in p_values]) < ALPHA
    return int((rejected & true_null).any(axis=1).sum())


@pytest.mark.parametrize("correlation", [0.0, 0.6])
def test_holm_controls_the_family_wise_error_under_the_global_null(
        correlation: float) -> None:
    p = _p_values(np.random.default_rng(41), np.zeros(HOLM_M), correlation)
    errors = _family_errors(p, np.ones(HOLM_M, dtype=bool), holm)
    assert errors <= _highest(HOLM_REPS, ALPHA), errors / HOLM_REPS
    if correlation == 0.0:
        # Holm rejects anything iff the smallest p < ALPHA / m: 1 - (1 - ALPHA / m)**m
        exact = 1 - (1 - ALPHA / HOLM_M) ** HOLM_M
        assert _consistent(errors, HOLM_REPS, exact, exact), errors / HOLM_REPS


def test_holm_controls_the_family_wise_error_when_some_nulls_are_false() -> None:
    shifts = np.array([3.0] * 4 + [0.0] * (HOLM_M - 4))
    p = _p_values(np.random.default_rng(42), shifts)
    errors = _family_errors(p, shifts == 0, holm)
    assert errors <= _highest(HOLM_REPS, ALPHA), errors / HOLM_REPS


def _bonferroni(p_values: list[float]) -> list[float]:
    return [min(1.0, len(p_values) * p) for p in p_values]


def test_holm_rejects_everything_bonferroni_does_and_more() -> None:
    shifts = np.array([3.0] * 4 + [0.0] * (HOLM_M - 4))
    p = _p_values(np.random.default_rng(43), shifts)
    holm_rejects = np.array([holm(row.tolist()) for row in p]) < ALPHA
    bonferroni_rejects = np.array([_bonferroni(row.tolist()) for row in p]) < ALPHA
    assert (holm_rejects >= bonferroni_rejects).all()
    power_holm = holm_rejects[:, shifts > 0].mean()
    power_bonferroni = bonferroni_rejects[:, shifts > 0].mean()
    assert power_holm > power_bonferroni + 0.01, (power_holm, power_bonferroni)


# --- compare_arms ----------------------------------------------------------------------

ARM_SEEDS = 50


@pytest.fixture
def quick_bootstrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The verdicts below rest on the tests, not on the bootstrap intervals."""
    monkeypatch.setattr(report_stats, "BOOTSTRAP_RESAMPLES", 99)
    yield


def _arm(rng: np.random.Generator, difficulty: NDArray[np.float64], success: float,
         slowness: float) -> ArmOutcome:
    converged = rng.random(difficulty.size) < success
    epochs = 1 + rng.poisson(slowness * difficulty)
    return ArmOutcome(converged.tolist(), epochs.tolist(), max_epochs=10**6)


def _significant(lines: list[str]) -> bool:
    """Whether a comparison's sentences declare any difference significant."""
    return any(" converges more often than " in line or " fewer epochs than " in line
               or " differ significantly " in line for line in lines)


@pytest.mark.usefixtures("quick_bootstrap")
def test_compare_arms_names_the_clearly_better_arm() -> None:
    # good converges on 95% of seeds in median ~40 epochs; poor on 60% in twice as many
    rng = np.random.default_rng(51)
    reps = 200
    best = more_often = fewer_epochs = 0
    for _ in range(reps):
        difficulty = rng.gamma(4, 10, size=ARM_SEEDS)
        arms = {"poor": _arm(rng, difficulty, 0.60, 2.0),
                "good": _arm(rng, difficulty, 0.95, 1.0)}
        lines = compare_arms("xor", arms, "SSE < 0.001").sentences()
        best += lines[0].startswith("Best on xor: good (")
        more_often += lines[3].startswith("good converges more often than poor: ")
        fewer_epochs += lines[4].startswith("good reaches SSE < 0.001 in ")
        assert not any(line.startswith(("poor converges more often",
                                        "poor reaches SSE < 0.001 in "))
                       for line in lines)
    assert best >= _lowest(reps, 0.99)
    assert more_often >= _lowest(reps, 0.95)
    assert fewer_epochs >= _lowest(reps, 0.95)


@pytest.mark.usefixtures("quick_bootstrap")
def test_compare_arms_finds_no_difference_between_equal_arms() -> None:
    rng = np.random.default_rng(52)
    reps = 300
    significant = 0
    for _ in range(reps):
        difficulty = rng.gamma(4, 10, size=ARM_SEEDS)
        arms = {"A": _arm(rng, difficulty, 0.8, 1.0), "B": _arm(rng, difficulty, 0.8, 1.0)}
        significant += _significant(compare_arms("xor", arms, "SSE < 0.001").sentences())
    assert significant <= _highest(reps, ALPHA), significant / reps


# --- the bands discriminate ------------------------------------------------------------


@pytest.mark.usefixtures("few_resamples")
def test_the_bands_reject_wrong_procedures() -> None:
    # a 50% Wilson interval passed off as 95%: too narrow
    hits = _wilson_hits(40, 0.5, 0.5, seed=61)
    assert not _consistent(hits, WILSON_REPS, *WILSON_CLAIM)
    # a 99.99% Wilson interval passed off as 95%: too wide
    hits = _wilson_hits(40, 0.5, 0.9999, seed=62)
    assert not _consistent(hits, WILSON_REPS, *WILSON_CLAIM)
    # a 50% bootstrap interval of the median
    hits = _median_hits(_exponential, float(np.log(2)), 100, 0.5, seed=63)
    assert not _consistent(hits, 100, *BOOTSTRAP_CLAIM)
    # ten tests at ALPHA each, uncorrected: family-wise error about 0.40
    p = _p_values(np.random.default_rng(64), np.zeros(HOLM_M))
    errors = _family_errors(p, np.ones(HOLM_M, dtype=bool), lambda p: p)
    assert errors > _highest(HOLM_REPS, ALPHA)
    # the signed-rank test on shuffled pairs loses the seed effect and its power
    rejections = _wilcoxon_rejections(_continuous_pairs, WILCOXON_N, WILCOXON_SHIFT, 200,
                                      seed=65, keep_pairing=False)
    assert rejections < _lowest(200, WILCOXON_POWER)
