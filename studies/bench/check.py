"""Is a benchmark run worse than its baseline? Per entry, seed by seed, with the tests of
``studies.report.stats``.

**What is compared.** A run and its baseline train the same configurations (the suite's
entry digests must match) on the same seeds (refused otherwise: outcomes are paired by seed).
Per entry, two metrics:

- success rate: McNemar's exact test on who converged, seed by seed;
- epochs to target, on the seeds both runs converged on: the Wilcoxon signed-rank test
  (Pratt), and the effect, the ratio of the medians (run / baseline) with a paired bootstrap
  interval.

Every testable p-value of the run (both metrics, every entry) is one Holm family, so a check
of a 50-entry suite raises a false alarm with probability at most ``alpha``, not 50 times
that. An entry *regressed* when its success rate is significantly lower, or its epochs are
significantly different with a median worse by more than ``epochs_margin`` (10%: a
significant 3% slow-down on many seeds is not worth waking anybody); *improved* mirrors
that; *not comparable* when its results changed but no seed converged in either run (nothing
measures convergence there); *unchanged* otherwise. The tests are two-sided, each direction
at ``alpha / 2``: the same test calls both regressions and improvements, and a regression
alarm is then more conservative than a one-sided test at ``alpha`` would be.

**Why an unchanged re-run cannot raise a false alarm, and why that is not the whole story.**
The engine is deterministic: the same code on the same machine gives bit-identical per-seed
outcomes, so every paired difference is zero, no test is testable, and every entry is
unchanged. A difference there is itself a finding, reported per entry (seeds that differ)
and for the run (not reproducible in an identical environment). That an identical re-run
passes says nothing about false alarms, though; they arise when the environment changes
without convergence changing: another CPU, BLAS, thread count or torch patch release changes
the rounding, training is chaotic, and the per-seed outcomes are drawn again from the same
distribution. The worst case is a complete redraw, as if the seeds were new, and under it the
tests' null hypothesis holds exactly (independent, exchangeable pairs). The tests simulate it:
results of one configuration on disjoint seed sets, labelled as the same seeds, checked
against each other over many simulated runs, must raise no more alarms than ``alpha``
allows; and an injected regression (Rprop's η⁺ changed below the suite, invisible to its
digests) must be flagged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from studies.bench.fingerprint import differences
from studies.bench.results import BenchRun, EntryResult
from studies.bench.suite import CheckSettings
from studies.report.stats import (
    Interval,
    Test,
    format_p,
    holm,
    mcnemar,
    ratio_of_medians,
    wilcoxon,
    wilson,
)

Verdict = Literal["regressed", "improved", "unchanged", "not comparable"]


class NotComparable(ValueError):
    """A baseline that cannot be compared with a run: other configurations or seeds."""


@dataclass(frozen=True)
class EntryCheck:
    """One entry against its baseline; pairs are (baseline, run). ``success_p`` and
    ``epochs_p`` are Holm-corrected over the whole check (1 where not testable)."""

    entry: str
    seeds: int
    differing_seeds: int
    """Seeds whose status, epochs or final loss differ from the baseline's."""
    successes: tuple[int, int]
    success_rates: tuple[Interval, Interval]
    success_test: Test
    success_p: float
    paired: int
    """Seeds both runs converged on."""
    medians: tuple[float, float] | None
    """Median epochs to target over the ``paired`` seeds."""
    epochs_ratio: Interval | None
    """Run median / baseline median (> 1: slower), paired bootstrap interval."""
    epochs_test: Test
    epochs_p: float
    verdict: Verdict = "unchanged"
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """Every entry's verdict, and the run's: regressed if any entry regressed."""

    suite: str
    baseline_run: str
    run: str
    settings: CheckSettings
    entries: list[EntryCheck]
    environment_changes: dict[str, tuple[Any, Any]]
    """Environment fields that differ from the baseline's (driver's and workers')."""
    reproducible: bool | None
    """False: results differ in an identical environment (same clean commit, versions,
    hardware, threads); None: the environments differ, or the code is uncommitted."""

    @property
    def verdict(self) -> Verdict:
        verdicts = {entry.verdict for entry in self.entries}
        if "regressed" in verdicts:
            return "regressed"
        return "improved" if "improved" in verdicts else "unchanged"

    @property
    def regressed(self) -> list[str]:
        return [entry.entry for entry in self.entries if entry.verdict == "regressed"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = self.settings.model_dump()
        data["verdict"] = self.verdict
        return data


def ensure_comparable(baseline: BenchRun, digests: dict[str, str],
                      seeds: dict[str, list[int]]) -> None:
    """Refuse a baseline whose entries are not the suite's (``digests``: entry id → config
    digest) or whose seeds differ, naming the entries."""
    before = {entry: result.digest for entry, result in baseline.entries.items()}
    problems = [f"{entry}: {_change(before.get(entry), digests.get(entry))}"
                for entry in sorted(set(before) | set(digests))
                if before.get(entry) != digests.get(entry)]
    if problems:
        raise NotComparable(
            f"the suite changed since baseline run {baseline.run_id}, so the check would "
            "compare different configurations:\n  " + "\n  ".join(problems)
            + f"\nrun the suite and promote a new baseline ('optistudy bench baseline "
            f"{baseline.suite} --from RUN')")
    differ = [entry for entry, result in baseline.entries.items()
              if result.seeds != seeds[entry]]
    if differ:
        raise NotComparable(
            f"the seeds differ from baseline run {baseline.run_id} for "
            f"{', '.join(differ)}: outcomes are compared seed by seed, so both runs need the "
            "same seeds")


def check_run(baseline: BenchRun, run: BenchRun, settings: CheckSettings) -> CheckReport:
    """Compare ``run`` with ``baseline`` entry by entry (see the module's docstring)."""
    ensure_comparable(baseline, {e: r.digest for e, r in run.entries.items()},
                      {e: r.seeds for e, r in run.entries.items()})
    confidence = 1 - settings.alpha
    entries = [_compare(baseline.entries[entry], result, confidence)
               for entry, result in run.entries.items()]
    entries = [_judge(entry, settings) for entry in _holm_corrected(entries)]
    changes = differences(baseline.environment, run.environment)
    for entry, result in run.entries.items():
        changes.update(differences(baseline.entries[entry].environment, result.environment))
    clean = run.environment.get("optistudy_commit") is not None and \
        run.environment.get("optistudy_dirty") is False
    differ = any(entry.differing_seeds for entry in entries)
    reproducible = (not differ) if clean and not changes else None
    return CheckReport(suite=run.suite, baseline_run=baseline.run_id, run=run.run_id,
                       settings=settings, entries=entries, environment_changes=changes,
                       reproducible=reproducible)


def _compare(baseline: EntryResult, run: EntryResult, confidence: float) -> EntryCheck:
    """The tests of one entry, not yet corrected nor judged."""
    both = [i for i, (a, b) in enumerate(zip(baseline.converged, run.converged, strict=True))
            if a and b]
    before = [float(baseline.epochs[i]) for i in both]
    after = [float(run.epochs[i]) for i in both]
    medians = (float(np.median(before)), float(np.median(after))) if both else None
    ratio = None
    if medians is not None and min(before + after) > 0:
        ratio = ratio_of_medians(before, after, confidence)
    seeds = len(run.seeds)
    successes = (sum(baseline.converged), sum(run.converged))
    differing = sum(a != b for a, b in zip(baseline.outcomes(), run.outcomes(), strict=True))
    return EntryCheck(
        entry=run.entry, seeds=seeds, differing_seeds=differing, successes=successes,
        success_rates=(wilson(successes[0], seeds, confidence),
                       wilson(successes[1], seeds, confidence)),
        success_test=mcnemar(baseline.converged, run.converged), success_p=1.0,
        paired=len(both), medians=medians, epochs_ratio=ratio,
        epochs_test=wilcoxon(before, after), epochs_p=1.0)


def _holm_corrected(entries: list[EntryCheck]) -> list[EntryCheck]:
    raw = [test.p_value for entry in entries for test in (entry.success_test, entry.epochs_test)
           if test.testable]
    adjusted = iter(holm(raw))
    return [replace(entry,
                    success_p=next(adjusted) if entry.success_test.testable else 1.0,
                    epochs_p=next(adjusted) if entry.epochs_test.testable else 1.0)
            for entry in entries]


def _judge(entry: EntryCheck, settings: CheckSettings) -> EntryCheck:
    """The entry's verdict and the findings behind it, in sentences."""
    alpha, margin = settings.alpha, settings.epochs_margin
    before, after = entry.successes
    success_change = np.sign(after - before) if entry.success_p < alpha else 0
    ratio = None if entry.medians is None or entry.medians[0] == 0 else \
        entry.medians[1] / entry.medians[0]
    epochs_change = 0
    if entry.epochs_p < alpha and ratio is not None:
        epochs_change = 1 if ratio > 1 + margin else -1 if ratio < 1 / (1 + margin) else 0
    findings = [_success_finding(entry, alpha), *_epochs_findings(entry, ratio, alpha, margin)]
    if entry.differing_seeds:
        findings.append(f"differs from the baseline on {entry.differing_seeds} of "
                        f"{entry.seeds} seeds (status, epochs or final loss)")
    else:
        findings.append("identical to the baseline on every seed (status, epochs, final loss)")
    verdict: Verdict = "unchanged"
    if success_change < 0 or epochs_change > 0:
        verdict = "regressed"
    elif success_change > 0 or epochs_change < 0:
        verdict = "improved"
    elif entry.differing_seeds and before == 0 and after == 0:
        verdict = "not comparable"
        findings.append("no seed converged in either run: the check cannot see a change in "
                        "convergence")
    return replace(entry, verdict=verdict, findings=tuple(findings))


def _success_finding(entry: EntryCheck, alpha: float) -> str:
    before, after = entry.successes
    rates = (f"success {_rate(after, entry.seeds, entry.success_rates[1])} vs baseline "
             f"{_rate(before, entry.seeds, entry.success_rates[0])}")
    if not entry.success_test.testable:
        return f"{rates}: converged on exactly the same seeds"
    direction = "lower" if after < before else "higher"
    judged = f"significantly {direction}" if entry.success_p < alpha else "no significant change"
    return (f"{rates}: {judged} (McNemar {format_p(entry.success_p)}, Holm-corrected, "
            f"{entry.success_test.n} discordant seeds)")


def _epochs_findings(entry: EntryCheck, ratio: float | None, alpha: float,
                     margin: float) -> list[str]:
    if entry.medians is None:
        return ["epochs to target: no seed converged in both runs"]
    paired = f"on the {entry.paired} seeds both converged on"
    medians = (f"median epochs to target {entry.medians[1]:g} vs baseline "
               f"{entry.medians[0]:g} {paired}")
    if ratio is None:
        return [f"{medians} (no ratio: a median of 0 epochs)"]
    effect = f"×{ratio:.3g}"
    interval = entry.epochs_ratio
    if interval is not None and interval.has_interval:
        effect += f" ({interval.confidence:.0%} CI {interval.low:.3g}–{interval.high:.3g})"
    if not entry.epochs_test.testable:
        return [f"{medians}: {effect}, not testable ({entry.epochs_test.method})"]
    test = f"Wilcoxon {format_p(entry.epochs_p)}, Holm-corrected"
    if entry.epochs_p >= alpha:
        return [f"{medians}: {effect}, no significant change ({test})"]
    beyond = abs(np.log(ratio)) > np.log1p(margin)
    size = (f"beyond the {margin:.0%} margin" if beyond
            else f"within the {margin:.0%} margin, not counted")
    direction = "slower" if ratio > 1 else "faster"
    return [f"{medians}: {effect}, significantly {direction} ({test}), {size}"]


def _rate(successes: int, seeds: int, interval: Interval) -> str:
    text = f"{successes}/{seeds}"
    if interval.low is None or interval.high is None:
        return text
    return f"{text} ({interval.confidence:.0%} CI {interval.low:.0%}–{interval.high:.0%})"


def _change(before: str | None, after: str | None) -> str:
    if before is None:
        return "added to the suite"
    if after is None:
        return "removed from the suite"
    return "its configuration changed"
