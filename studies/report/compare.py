"""Which arm is best on a task, by how much and how sure: summaries, paired comparisons,
plain-English verdicts and performance profiles, from per-seed outcomes on shared seeds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

from studies.report.stats import (
    Interval,
    Test,
    format_p,
    holm,
    mcnemar,
    median_interval,
    ratio_of_medians,
    wilcoxon,
    wilson,
)


@dataclass(frozen=True)
class ArmOutcome:
    """One arm's outcome on each seed, in the seed order shared by every arm."""

    converged: list[bool]
    epochs: list[int]
    """Epochs to target; meaningful where ``converged``."""
    max_epochs: int
    times: list[float | None] | None = None
    """Seconds to target, None where the seed did not converge (optional)."""

    def __post_init__(self) -> None:
        seeds = len(self.converged)
        if len(self.epochs) != seeds or (self.times is not None and len(self.times) != seeds):
            times = "-" if self.times is None else len(self.times)
            raise ValueError(f"One entry per seed needed: {seeds} converged, "
                             f"{len(self.epochs)} epochs, {times} times")
        if self.max_epochs < 0:
            raise ValueError(f"Invalid max_epochs: {self.max_epochs} (need >= 0)")
        reached = [e for e, c in zip(self.epochs, self.converged, strict=True) if c]
        if any(not 0 <= e <= self.max_epochs for e in reached):
            raise ValueError(f"Epochs to target of converged seeds must lie in "
                             f"[0, {self.max_epochs}]; got {reached}")

    @property
    def seeds(self) -> int:
        return len(self.converged)

    def reached(self) -> list[int]:
        """Epochs to target of the converged seeds."""
        return [e for e, c in zip(self.epochs, self.converged, strict=True) if c]


@dataclass(frozen=True)
class ArmSummary:
    """One arm on its own: success rate (Wilson interval), median epochs and seconds to
    target over its converged seeds (bootstrap intervals)."""

    name: str
    seeds: int
    successes: int
    max_epochs: int
    success: Interval
    epochs: Interval
    time_s: Interval | None


@dataclass(frozen=True)
class PairComparison:
    """Two arms on their shared seeds; ``first`` ranks above ``second``.

    ``success_p`` and ``epochs_p`` are Holm-corrected across the task's tests (1 where the
    test was not testable). ``faster`` is the arm with the lower median epochs over the
    ``paired`` seeds where both converged (``first`` on a tie) and ``ratio`` how many
    times fewer epochs it needs than the other; both are None without paired seeds or
    when an arm took 0 epochs on one of them (a ratio to 0 is undefined).
    """

    first: str
    second: str
    seeds: int
    paired: int
    success_test: Test
    success_p: float
    epochs_test: Test
    epochs_p: float
    medians: tuple[float, float] | None
    """Median epochs of (first, second) over the paired seeds."""
    faster: str | None
    ratio: Interval | None
    all_equal: bool
    """Both arms took exactly the same epochs on every paired seed."""
    consistent: bool = True
    """The medians and the signed-rank test's own estimate (Hodges–Lehmann: the median of
    the Walsh averages of the paired differences) agree on which arm is faster; on skewed
    data they can disagree, and then no "× fewer epochs" claim is made."""

    @property
    def slower(self) -> str | None:
        if self.faster is None:
            return None
        return self.second if self.faster == self.first else self.first


@dataclass(frozen=True)
class TaskComparison:
    """Every arm of one task, ranked best first, and every pair of arms compared."""

    task: str
    target_text: str
    confidence: float
    arms: list[ArmSummary]
    pairs: list[PairComparison]

    @property
    def best(self) -> str:
        return self.arms[0].name

    def sentences(self) -> list[str]:
        """The verdict in plain English: the best arm, each arm on its own, then each
        pair (the best against each other arm first)."""
        lines = []
        if len(self.arms) > 1:
            best = _rank_key(self.arms[0])
            tied = [arm.name for arm in self.arms[1:] if _rank_key(arm) == best]
            ties = f", tied with {', '.join(tied)}" if tied else ""
            lines.append(f"Best on {self.task}: {self.best}{ties} (ranked by success rate, "
                         f"then by median epochs to {self.target_text}).")
        lines += [_arm_sentence(arm, self.target_text) for arm in self.arms]
        summaries = {arm.name: arm for arm in self.arms}
        for pair in self.pairs:
            lines.append(_success_sentence(pair, summaries, 1 - self.confidence))
            lines.append(_epochs_sentence(pair, self.target_text, self.confidence))
        return lines


def compare_arms(task_label: str, arms: dict[str, ArmOutcome], target_text: str,
                 confidence: float = 0.95, *, seed: int = 0) -> TaskComparison:
    """Summarise and compare the arms of one task on their shared seeds.

    Ranking, best first: higher success rate, then lower median epochs to target over the
    arm's converged seeds (an arm that never converged comes last), then the order of
    ``arms``. Every pair is tested twice: McNemar on who converged, Wilcoxon on epochs
    where both converged; the testable p-values of the whole task form one Holm family
    (untestable tests, p = 1, cannot reject and are left out of it). ``seed`` drives the
    bootstrap resampling.
    """
    if not arms:
        raise ValueError(f"No arms to compare on {task_label}")
    seed_counts = {name: outcome.seeds for name, outcome in arms.items()}
    if len(set(seed_counts.values())) != 1 or 0 in seed_counts.values():
        raise ValueError(f"Every arm needs the same seeds (at least one); seeds per arm on "
                         f"{task_label}: {seed_counts}")
    summaries = [_summarise(name, outcome, confidence, seed) for name, outcome in arms.items()]
    summaries.sort(key=_rank_key)
    pairs = [_pair(first.name, second.name, arms, confidence, seed)
             for first, second in combinations(summaries, 2)]
    pairs = _holm_corrected(pairs)
    return TaskComparison(task_label, target_text, confidence, summaries, pairs)


def performance_profile(arms: dict[str, ArmOutcome],
                        taus: Sequence[float]) -> dict[str, list[float]]:
    """Dolan & Moré (2002) performance profiles with the seeds as problems.

    On each seed, an arm's performance ratio is its epochs to target over the fewest
    epochs any arm needed on that seed (1 for the best, also when the best needed 0
    epochs; infinite for a seed the arm did not converge on). An arm's profile at tau is
    the fraction of seeds whose ratio is at most tau: at tau = 1, how often it is (one of)
    the fastest; for large tau, its success rate.
    """
    if not arms:
        raise ValueError("No arms for a performance profile")
    seed_counts = {name: outcome.seeds for name, outcome in arms.items()}
    if len(set(seed_counts.values())) != 1 or 0 in seed_counts.values():
        raise ValueError(f"Every arm needs the same seeds (at least one); seeds per arm: "
                         f"{seed_counts}")
    cost = np.array([np.where(outcome.converged, outcome.epochs, np.inf)
                     for outcome in arms.values()], dtype=float)
    best = cost.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(np.isfinite(cost),
                          np.where(cost == best, 1.0, cost / best), np.inf)
    fractions = (ratios[:, :, None] <= np.asarray(taus, dtype=float)).mean(axis=1)
    return {name: row.tolist() for name, row in zip(arms, fractions, strict=True)}


# -- building the comparison ---------------------------------------------------------------


def _summarise(name: str, outcome: ArmOutcome, confidence: float, seed: int) -> ArmSummary:
    successes = sum(outcome.converged)
    time_s = None
    if outcome.times is not None:
        times = [t for t, c in zip(outcome.times, outcome.converged, strict=True)
                 if c and t is not None]
        time_s = median_interval(times, confidence, seed)
    return ArmSummary(name, outcome.seeds, successes, outcome.max_epochs,
                      wilson(successes, outcome.seeds, confidence),
                      median_interval(outcome.reached(), confidence, seed), time_s)


def _pair(first: str, second: str, arms: dict[str, ArmOutcome], confidence: float,
          seed: int) -> PairComparison:
    a, b = arms[first], arms[second]
    both = [i for i in range(a.seeds) if a.converged[i] and b.converged[i]]
    a_epochs = [a.epochs[i] for i in both]
    b_epochs = [b.epochs[i] for i in both]
    medians = None
    faster = None
    ratio = None
    if both:
        medians = (float(np.median(a_epochs)), float(np.median(b_epochs)))
        if min(a_epochs + b_epochs) > 0:
            faster = first if medians[0] <= medians[1] else second
            fast, slow = (a_epochs, b_epochs) if faster == first else (b_epochs, a_epochs)
            ratio = ratio_of_medians(fast, slow, confidence, seed)
    shift = hodges_lehmann(a_epochs, b_epochs) if both else 0.0
    consistent = faster is None or (shift < 0 if faster == first else shift > 0)
    return PairComparison(
        first=first, second=second, seeds=a.seeds, paired=len(both),
        success_test=mcnemar(a.converged, b.converged), success_p=1.0,
        epochs_test=wilcoxon(a_epochs, b_epochs), epochs_p=1.0,
        medians=medians, faster=faster, ratio=ratio,
        all_equal=bool(both) and a_epochs == b_epochs, consistent=consistent)


def hodges_lehmann(a: Sequence[float], b: Sequence[float]) -> float:
    """The median of the Walsh averages (d_i + d_j) / 2, i ≤ j, of d = a − b: the shift
    the Wilcoxon signed-rank test estimates (negative: ``a`` is smaller)."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rows, columns = np.triu_indices(differences.size)
    return float(np.median((differences[rows] + differences[columns]) / 2))


def _holm_corrected(pairs: list[PairComparison]) -> list[PairComparison]:
    """The pairs with their tests' p-values Holm-corrected as one family."""
    raw = [p.p_value for pair in pairs for p in (pair.success_test, pair.epochs_test)
           if p.testable]
    adjusted = iter(holm(raw))
    corrected = []
    for pair in pairs:
        success_p = next(adjusted) if pair.success_test.testable else 1.0
        epochs_p = next(adjusted) if pair.epochs_test.testable else 1.0
        corrected.append(replace(pair, success_p=success_p, epochs_p=epochs_p))
    return corrected


def _rank_key(arm: ArmSummary) -> tuple[int, float]:
    """Sorts best first: more successes, then fewer median epochs (none: last)."""
    return -arm.successes, math.inf if arm.epochs.estimate is None else arm.epochs.estimate


# -- sentences -----------------------------------------------------------------------------


def _arm_sentence(arm: ArmSummary, target_text: str) -> str:
    success = arm.success
    text = (f"{arm.name} reaches {target_text} on {arm.successes} of {arm.seeds} seeds "
            f"within {arm.max_epochs} epochs ({_percent(arm.successes / arm.seeds)}, "
            f"{_interval(success, _percent_digits, '%')})")
    if arm.epochs.estimate is not None:
        text += (f"; median {_number(arm.epochs.estimate)} epochs "
                 f"({_interval(arm.epochs, _number)})")
    if arm.time_s is not None and arm.time_s.estimate is not None:
        text += (f"; median {_seconds(arm.time_s.estimate)} s "
                 f"({_interval(arm.time_s, _seconds, ' s')})")
    return text + "."


def _success_sentence(pair: PairComparison, arms: dict[str, ArmSummary],
                      alpha: float) -> str:
    first, second = arms[pair.first], arms[pair.second]
    if not pair.success_test.testable:
        return (f"{pair.first} and {pair.second} converge on exactly the same seeds "
                f"({first.successes} of {pair.seeds}).")
    rates = (f"{_percent(first.successes / pair.seeds)} vs "
             f"{_percent(second.successes / pair.seeds)} of {pair.seeds} seeds "
             f"(McNemar {format_p(pair.success_p)}, Holm-corrected)")
    if pair.success_p < alpha:
        return f"{pair.first} converges more often than {pair.second}: {rates}."
    return (f"No significant difference in success rate between {pair.first} and "
            f"{pair.second}: {rates}.")


def _epochs_sentence(pair: PairComparison, target_text: str, confidence: float) -> str:
    names = f"{pair.first} and {pair.second}"
    if pair.medians is None:
        return (f"Epochs to {target_text} cannot be compared between {names}: "
                "no seed converged in both.")
    in_both = f"{pair.paired} of {pair.seeds} seeds converged in both"
    if pair.all_equal:
        return (f"{names} reach {target_text} in exactly the same number of epochs on "
                f"every seed where both converged ({in_both}).")
    if not pair.epochs_test.testable:
        return (f"Epochs to {target_text} cannot be tested between {names}: fewer than 2 "
                f"of the seeds where both converged differ ({in_both}).")
    test = f"Wilcoxon {format_p(pair.epochs_p)}, Holm-corrected"
    medians = (f"median {_number(pair.medians[0])} vs {_number(pair.medians[1])} epochs")
    significant = pair.epochs_p < 1 - confidence
    ratio = None if pair.ratio is None else pair.ratio.estimate
    if significant and not pair.consistent:
        return (f"{names} differ significantly in epochs to {target_text} on paired seeds "
                f"({test}; {in_both}), but their medians ({medians}) and the signed ranks "
                "disagree on which is faster (skewed differences): no speed-up is claimed.")
    if significant and pair.ratio is not None and ratio is not None and ratio != 1:
        digits = 2 if ratio < 1.05 else 1

        def times(value: float) -> str:
            return f"{value:.{digits}f}"

        return (f"{pair.faster} reaches {target_text} in {times(ratio)}× fewer epochs than "
                f"{pair.slower} ({_interval(pair.ratio, times)}, {test}; {in_both}).")
    if significant:
        return (f"{names} differ significantly in epochs to {target_text} on paired "
                f"seeds, with {medians} ({test}; {in_both}).")
    return (f"No significant difference in epochs to {target_text} between {names}: "
            f"{medians} ({test}; {in_both}).")


def _interval(interval: Interval, form: Callable[[float], str], unit: str = "") -> str:
    if interval.low is None or interval.high is None:
        return f"no interval: {interval.method.removeprefix('none: ')}"
    label = f"{interval.confidence * 100:g}% CI"
    return f"{label} {form(interval.low)}–{form(interval.high)}{unit}"


def _percent(rate: float) -> str:
    return f"{rate:.0%}"


def _percent_digits(rate: float) -> str:
    return f"{rate * 100:.0f}"


def _number(value: float) -> str:
    return f"{value:g}" if value < 1e6 else f"{value:.3g}"


def _seconds(value: float) -> str:
    return f"{value:.3g}"
