"""What ``optistudy bench`` prints: a run's table, a check's verdicts, a suite's runs."""

from __future__ import annotations

from studies.bench.check import CheckReport
from studies.bench.results import BenchRun
from studies.bench.store import BenchStore
from studies.text_table import text_table


def run_table(run: BenchRun) -> str:
    """One row per entry: success, median and p90 epochs to target, failures, seconds."""
    rows = [("entry", "success", "epochs median", "epochs p90", "diverged", "stalled",
             "wall s")]
    for result in run.entries.values():
        summary = result.summary
        rows.append((result.entry, f"{sum(result.converged)}/{len(result.seeds)}",
                     _number(summary["epochs_to_target_median"]),
                     _number(summary["epochs_to_target_p90"]),
                     f"{summary['diverged_rate']:.0%}", f"{summary['stalled_rate']:.0%}",
                     f"{summary['wall_time_s']:.1f}"))
    return text_table(rows)


def check_lines(report: CheckReport) -> list[str]:
    """A table of verdicts, the findings behind every entry that is not unchanged, the
    environment's changes and the run's verdict."""
    rows = [("entry", "success (base -> run)", "p", "epochs median (base -> run)", "ratio",
             "p", "differing seeds", "verdict")]
    for entry in report.entries:
        medians = "-" if entry.medians is None else \
            f"{entry.medians[0]:g} -> {entry.medians[1]:g}"
        ratio = entry.epochs_ratio
        rows.append((entry.entry, f"{entry.successes[0]} -> {entry.successes[1]} of "
                     f"{entry.seeds}", _p(entry.success_p, entry.success_test.testable),
                     medians, "-" if ratio is None or ratio.estimate is None
                     else f"{ratio.estimate:.3g}", _p(entry.epochs_p, entry.epochs_test.testable),
                     str(entry.differing_seeds), entry.verdict))
    lines = [f"check of run {report.run} against baseline {report.baseline_run} "
             f"(alpha {report.settings.alpha:g}, Holm over every test; epochs margin "
             f"{report.settings.epochs_margin:.0%})", text_table(rows, left=(0, 7))]
    for entry in report.entries:
        if entry.verdict != "unchanged":
            lines.append(f"{entry.entry}: {entry.verdict.upper()}")
            lines += [f"  {finding}" for finding in entry.findings]
    if report.environment_changes:
        changed = ", ".join(f"{key} {before} -> {after}"
                            for key, (before, after) in report.environment_changes.items())
        lines.append(f"environment changed since the baseline: {changed}")
    else:
        lines.append("environment: the same as the baseline's")
    if report.reproducible is False:
        lines.append("NOT REPRODUCIBLE: results differ from the baseline's although the "
                     "environment (clean commit, versions, hardware, threads) is identical")
    regressed = report.regressed
    lines.append(f"verdict: {report.verdict.upper()}" + (
        f" ({len(regressed)} of {len(report.entries)} entries: {', '.join(regressed)})"
        if regressed else ""))
    return lines


def list_lines(store: BenchStore) -> list[str]:
    """Every stored run of a suite, oldest first, with its check verdict; the baseline
    marked."""
    baseline = store.baseline_id()
    runs = store.run_ids()
    if not runs:
        return [f"suite {store.suite}: no runs yet ('optistudy bench run {store.suite}')"]
    rows = [("run", "entries", "converged", "wall s", "check", "baseline")]
    for run_id in runs:
        run = store.load(run_id)
        converged = sum(sum(result.converged) for result in run.entries.values())
        seeds = sum(len(result.seeds) for result in run.entries.values())
        check = store.check_of(run_id)
        verdict = "-" if check is None else f"{check['verdict']} vs {check['baseline_run']}"
        rows.append((run_id, str(len(run.entries)), f"{converged}/{seeds}",
                     f"{run.wall_time_s:.0f}", verdict, "baseline" if run_id == baseline else ""))
    lines = [f"suite {store.suite}: {len(runs)} run(s); baseline: {baseline or 'none'}",
             text_table(rows, left=(0, 4, 5))]
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _p(value: float, testable: bool) -> str:
    return f"{value:.3g}" if testable else "-"
