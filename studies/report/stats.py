"""The statistics behind a report: intervals and paired tests on per-seed outcomes.

Every arm of a comparison trains the same seeds, so outcomes are paired by seed. Success
rates get Wilson score intervals, medians (epochs or seconds to target) percentile
bootstrap intervals, and two arms are compared seed by seed: McNemar's exact test on who
converged, the Wilcoxon signed-rank test on epochs where both converged, and a paired
bootstrap interval of the ratio of their medians. A task's tests are Holm-corrected
together. scipy.stats does the work wherever it provides the procedure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval.

    ``low`` and ``high`` are None when the data cannot support an interval at this
    confidence (too few values, see `min_values_for_interval`); ``estimate`` is None when
    there is nothing to estimate (no values). ``method`` says how the interval was made,
    or why there is none, in words fit for a report.
    """

    low: float | None
    high: float | None
    estimate: float | None
    confidence: float
    method: str = ""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class Test:
    """A hypothesis test's outcome. ``statistic`` is None when the data cannot be tested
    (``p_value`` is then 1 and ``method`` says why); ``n`` is the number of pairs the test
    used (McNemar: discordant pairs; Wilcoxon: pairs, zero differences included)."""

    statistic: float | None
    p_value: float
    n: int
    method: str

    @property
    def testable(self) -> bool:
        return self.statistic is not None


def wilson(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """The success rate ``successes / trials`` with its Wilson score interval (Wilson 1927),
    which stays inside [0, 1] and is sensible at 0 and at ``trials`` successes."""
    _check_confidence(confidence)
    if not 0 <= successes <= trials or trials < 1:
        raise ValueError(f"Invalid success count: {successes} of {trials} trials "
                         "(need 0 <= successes <= trials and trials >= 1)")
    ci = stats.binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return Interval(float(ci.low), float(ci.high), successes / trials, confidence,
                    "Wilson score")


def min_values_for_interval(confidence: float) -> int:
    """The fewest values from which an interval for a median can have ``confidence``.

    Any interval for a median built from n values lies within their range, and the range
    misses the median with probability 2 * 0.5**n (all values on one side of it). So an
    honest interval needs 1 - 2 * 0.5**n >= confidence: 6 values at 95%, 8 at 99%. With
    fewer values we give the estimate alone and say so, rather than a bootstrap interval
    that is narrower than it claims.
    """
    _check_confidence(confidence)
    return max(2, math.ceil(1 - math.log2(1 - confidence)))


def median_interval(values: Sequence[float], confidence: float = 0.95,
                    seed: int = 0) -> Interval:
    """The median of ``values`` with a percentile bootstrap interval.

    Percentile rather than BCa: BCa's acceleration comes from the jackknife, which is
    degenerate for the median of small integer samples with ties (epoch counts), where
    scipy returns NaN. A constant sample gives a zero-width interval; no values give no
    estimate; fewer than `min_values_for_interval` give the estimate alone.
    """
    sample = _array(values, "values")
    if sample.size == 0:
        return Interval(None, None, None, confidence, "none: no values")
    return _bootstrap((sample,), np.median, float(np.median(sample)), confidence, seed,
                      "values")


def ratio_of_medians(a_values: Sequence[float], b_values: Sequence[float],
                     confidence: float = 0.95, seed: int = 0) -> Interval:
    """How many times fewer epochs arm a needs than arm b: median(b) / median(a) over
    paired values (seed i of a with seed i of b; pass only seeds where both converged),
    with a paired percentile bootstrap interval (the same seeds resampled for both arms).

    Values must be positive (a median of 0 epochs has no ratio). No pairs give no
    estimate; fewer pairs than `min_values_for_interval` give the estimate alone.
    """
    a = _array(a_values, "a_values")
    b = _array(b_values, "b_values")
    if a.shape != b.shape:
        raise ValueError(f"Paired values differ in length: {a.size} and {b.size}")
    if a.size == 0:
        return Interval(None, None, None, confidence, "none: no paired values")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("A ratio of medians needs positive values; got "
                         f"min {min(a.min(), b.min())}")

    def ratio(a: NDArray[np.float64], b: NDArray[np.float64],
              axis: int = -1) -> NDArray[np.float64]:
        return np.asarray(np.median(b, axis=axis) / np.median(a, axis=axis))

    return _bootstrap((a, b), ratio, float(ratio(a, b)), confidence, seed, "paired values")


def mcnemar(a_converged: Sequence[bool], b_converged: Sequence[bool]) -> Test:
    """McNemar's exact test of equal success rates on paired seeds: under the null, each
    discordant seed (one arm converged, the other not) is a fair coin, so the count where
    only a converged is Binomial(discordant, 1/2). ``statistic`` is that count."""
    a = np.asarray(a_converged, dtype=bool)
    b = np.asarray(b_converged, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"Paired outcomes differ in length: {a.size} and {b.size}")
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    discordant = only_a + only_b
    if discordant == 0:
        return Test(None, 1.0, 0, "McNemar exact: not testable, no discordant seeds")
    p = stats.binomtest(only_a, discordant, 0.5).pvalue
    return Test(float(only_a), float(p), discordant, "McNemar exact (binomial)")


def wilcoxon(a_epochs: Sequence[float], b_epochs: Sequence[float]) -> Test:
    """The Wilcoxon signed-rank test on paired epochs (pass only seeds where both arms
    converged), two-sided.

    Zero differences (both arms took the same number of epochs, common with integer
    counts) are handled by Pratt's method: they take part in the ranking and then drop
    out, which is more conservative than discarding them beforehand. scipy's
    ``method="auto"``: exact for up to 50 pairs without ties or zeros; with ties or zeros,
    exhaustive permutations for up to 13 pairs and the tie-corrected normal approximation
    beyond. Fewer than 2 non-zero differences cannot be tested (p = 1).
    """
    a = _array(a_epochs, "a_epochs")
    b = _array(b_epochs, "b_epochs")
    if a.shape != b.shape:
        raise ValueError(f"Paired values differ in length: {a.size} and {b.size}")
    nonzero = int(np.count_nonzero(a - b))
    if nonzero < 2:
        return Test(None, 1.0, a.size, "Wilcoxon signed-rank: not testable, "
                    f"{nonzero} non-zero paired difference{'' if nonzero == 1 else 's'}")
    result = stats.wilcoxon(a, b, zero_method="pratt")
    return Test(float(result.statistic), float(result.pvalue), a.size,
                "Wilcoxon signed-rank (Pratt)")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (Holm 1979, "A simple
    sequentially rejective multiple test procedure", Scand. J. Statist. 6:65-70).

    scipy 1.17 has no Holm correction (``false_discovery_control`` is Benjamini-Hochberg,
    which controls a different error rate), so it is written out: sort ascending, multiply
    the i-th smallest (from 0) by m - i, carry the running maximum, cap at 1. Rejecting
    where the adjusted p < alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=float)
    if ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError(f"p-values must lie in [0, 1]; got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def format_p(p_value: float) -> str:
    """A p-value for a sentence: "p < 0.001", "p = 0.004", "p = 0.62", "p = 1"."""
    if p_value < 0.001:
        return "p < 0.001"
    if p_value < 0.01:
        return f"p = {p_value:.3f}"
    text = f"{p_value:.2f}"
    return "p = 1" if text == "1.00" else f"p = {text}"


def _bootstrap(data: tuple[NDArray[np.float64], ...], statistic: Callable[..., object],
               estimate: float, confidence: float, seed: int, what: str) -> Interval:
    """A percentile bootstrap interval of ``statistic`` (vectorised, ``axis`` keyword)
    over equal-length samples resampled together, or the estimate alone when there are too
    few values or they are constant."""
    n = data[0].size
    needed = min_values_for_interval(confidence)
    if n < needed:
        return Interval(None, None, estimate, confidence,
                        f"none: only {n} {what}, an interval needs at least {needed}")
    if all((sample == sample[0]).all() for sample in data):
        return Interval(estimate, estimate, estimate, confidence,
                        f"constant {what}: zero width")
    result = stats.bootstrap(data, statistic, paired=len(data) > 1, vectorized=True,
                             confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                             method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(float(ci.low), float(ci.high), estimate, confidence,
                    f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples")


def _array(values: Sequence[float], name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a flat list of finite numbers; got {list(values)}")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"Invalid confidence: {confidence} (need 0 < confidence < 1)")
