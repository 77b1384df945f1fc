"""Benchmark suites and the regression check, without Ray: the shipped suite, spec errors
that name their field, the check's verdicts on controlled outcomes, and a no-difference
simulation on real engine results (see ``studies.bench.check`` for why it is needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from service.cli import app
from studies.bench import BenchRun, CheckSettings, EntryResult, NotComparable, check_run
from studies.bench.fingerprint import config_digest, environment
from studies.bench.store import new_run_id
from studies.bench.suite import load_suite
from studies.engine import TrainConfig, train
from studies.specs import SpecError

SETTINGS = CheckSettings()


def test_classic_suite_covers_every_algorithm_and_task() -> None:
    suite = load_suite("classic")
    configs = suite.configs()
    algorithms: set[str] = set()
    for config in configs.values():
        optimizer = config.optimizer
        hyperparameters = optimizer.hyperparameters
        if optimizer.name == "steepest_descent":
            algorithms.add("momentum" if hyperparameters.get("momentum") else config.mode)
        else:
            algorithms.add(str(hyperparameters.get("variant", optimizer.name)))
    assert {"perceptron_rule", "batch", "online", "momentum", "Rprop+", "Rprop-", "iRprop+",
            "iRprop-", "sag", "slr", "rmsprop", "adam"} <= algorithms
    assert {"xor", "parity-4", "encoder-10-5-10", "spirals", "digits"} <= \
        {config.task for config in configs.values()}
    assert all(config.model is not None and config.model.type == "perceptron"
               for config in configs.values() if config.optimizer.name == "perceptron_rule")


def _suite(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny",
        "seeds": 4,
        "tasks": [{"task": "xor", "stop": {"max_epochs": 50}}],
        "entries": [{"task": "xor", "name": "iRprop_plus",
                     "optimizer": {"name": "rprop", "variant": "iRprop+"}}],
    }
    data.update(changes)
    return data


def _entry(**fields: Any) -> dict[str, Any]:
    return {"task": "xor", "name": "iRprop_plus",
            "optimizer": {"name": "rprop", "variant": "iRprop+"}, **fields}


@pytest.mark.parametrize(("data", "expected"), [
    (_suite(entries=[_entry(optimizer={"name": "rprop", "eta_plus": 0.9})]),
     "entries.0.optimizer.eta_plus: Invalid eta_plus: 0.9 (allowed: eta_plus > 1)"),
    (_suite(entries=[_entry(task="xr")]), "entries.0.task: unknown task 'xr' (allowed: xor)"),
    (_suite(entries=[_entry(overrides={"colour": "red"})]),
     "entries.0.overrides.colour: unknown field 'colour'"),
    (_suite(entries=[_entry(overrides={"mode": "minibatch"})]),
     "entries.0: mode 'minibatch' needs batch_size (on task 'xor')"),
    (_suite(entries=[_entry(), _entry()]), "entries.1.name: entry 'xor/iRprop_plus' is "
     "already entries.0"),
    (_suite(seeds=[1, 1]), "seeds: seeds must be distinct"),
    (_suite(entries=[_entry(seeds=0)]), "entries.0.seeds: a seed count must be in"),
    (_suite(tasks=[{"task": "xor", "stop": {"max_epochs": 0}}]),
     "tasks.0.stop.max_epochs: Input should be greater than or equal to 1"),
    (_suite(check={"alpha": 0.7}), "check.alpha: Input should be less than 0.5"),
    (_suite(colour="red"), "colour: Extra inputs are not permitted"),
])
def test_a_suite_error_names_its_field(tmp_path: Path, data: dict[str, Any],
                                       expected: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as error:
        load_suite(str(path))
    assert any(problem.startswith(expected) for problem in error.value.problems), \
        error.value.problems


def _result(entry: str, status: list[str], epochs: list[int], *,
            digest: str = "digest") -> EntryResult:
    seeds = list(range(len(status)))
    return EntryResult(entry=entry, digest=digest, config={"stop": {"max_epochs": 1000}},
                       seeds=seeds, status=status, epochs=epochs,
                       final_loss=[0.0 if s == "converged" else 1.0 for s in status],
                       time_to_target_s=[None] * len(status), summary={},
                       environment={"torch": "2.13.0"})


def _run(run_id: str, *results: EntryResult) -> BenchRun:
    return BenchRun(suite="synthetic", run_id=run_id, created="", suite_digest="",
                    environment={"optistudy_commit": "abc", "optistudy_dirty": False},
                    entries={result.entry: result for result in results})


BASE_EPOCHS = [40, 52, 47, 61, 38, 55, 44, 50, 58, 42, 49, 53, 46, 60, 41, 57]
CONVERGED = ["converged"] * 16


def test_slower_beyond_the_margin_is_a_regression_within_it_is_not() -> None:
    baseline = _run("base", _result("t/a", CONVERGED, BASE_EPOCHS),
                    _result("t/b", CONVERGED, BASE_EPOCHS))
    slower = _run("new", _result("t/a", CONVERGED, [round(e * 1.5) for e in BASE_EPOCHS]),
                  _result("t/b", CONVERGED, [e + 2 for e in BASE_EPOCHS]))
    report = check_run(baseline, slower, SETTINGS)
    regressed, within = report.entries
    assert regressed.verdict == "regressed" and report.verdict == "regressed"
    assert regressed.epochs_ratio is not None
    assert regressed.epochs_ratio.estimate == pytest.approx(1.5, abs=0.01)
    assert any("beyond the 10% margin" in finding for finding in regressed.findings)
    assert within.epochs_p < SETTINGS.alpha and within.verdict == "unchanged"
    assert any("within the 10% margin" in finding for finding in within.findings)
    assert report.regressed == ["t/a"] and report.reproducible is False
    assert json.loads(json.dumps(report.to_json()))["verdict"] == "regressed"


def test_fewer_successes_is_a_regression_more_an_improvement() -> None:
    fewer = ["converged"] * 4 + ["max_epochs"] * 12
    baseline = _run("base", _result("t/a", CONVERGED, BASE_EPOCHS),
                    _result("t/b", fewer, BASE_EPOCHS))
    swapped = _run("new", _result("t/a", fewer, BASE_EPOCHS),
                   _result("t/b", CONVERGED, BASE_EPOCHS))
    worse, better = check_run(baseline, swapped, SETTINGS).entries
    assert (worse.verdict, better.verdict) == ("regressed", "improved")
    assert worse.successes == (16, 4) and worse.success_p < SETTINGS.alpha


def test_an_identical_run_is_unchanged_and_a_change_without_convergence_not_comparable(
        ) -> None:
    never = ["max_epochs"] * 16
    baseline = _run("base", _result("t/a", CONVERGED, BASE_EPOCHS),
                    _result("t/b", never, [1000] * 16))
    other_losses = replace(baseline.entries["t/b"], final_loss=[0.5] * 16)
    report = check_run(baseline, _run("new", baseline.entries["t/a"], other_losses), SETTINGS)
    same, unseen = report.entries
    assert same.verdict == "unchanged" and same.differing_seeds == 0
    assert any("identical to the baseline" in finding for finding in same.findings)
    assert unseen.verdict == "not comparable" and unseen.differing_seeds == 16
    assert report.verdict == "unchanged"


def test_a_changed_suite_or_other_seeds_are_refused() -> None:
    baseline = _run("base", _result("t/a", CONVERGED, BASE_EPOCHS))
    changed = _run("new", _result("t/a", CONVERGED, BASE_EPOCHS, digest="other"))
    with pytest.raises(NotComparable, match=r"suite changed.*\n  t/a: its configuration"):
        check_run(baseline, changed, SETTINGS)
    added = _run("new", baseline.entries["t/a"], _result("t/new", CONVERGED, BASE_EPOCHS))
    with pytest.raises(NotComparable, match="t/new: added to the suite"):
        check_run(baseline, added, SETTINGS)
    shifted = replace(baseline.entries["t/a"], seeds=list(range(1, 17)))
    with pytest.raises(NotComparable, match=r"seeds differ .* for t/a"):
        check_run(baseline, _run("new", shifted), SETTINGS)


SIMULATED_SETS = 9
SET_SIZE = 16


def _population(task: str, layers: list[int], optimizer: dict[str, Any]) -> EntryResult:
    config = TrainConfig.model_validate({
        "task": task, "model": {"layers": layers}, "optimizer": optimizer,
        "stop": {"target": {"quantity": "sse", "below": 0.01}, "max_epochs": 400},
        "seeds": SIMULATED_SETS * SET_SIZE})
    result = train(config, history_points=0)
    return EntryResult.of(f"{task}/{optimizer['name']}", config_digest(config), result,
                          environment())


def _seed_set(result: EntryResult, index: int) -> EntryResult:
    """Seed set ``index`` of a population, relabelled as seeds 0..SET_SIZE-1: a re-run whose
    outcomes are drawn again from the same distribution."""
    chosen = slice(index * SET_SIZE, (index + 1) * SET_SIZE)
    return replace(result, seeds=list(range(SET_SIZE)), status=result.status[chosen],
                   epochs=result.epochs[chosen], final_loss=result.final_loss[chosen],
                   time_to_target_s=result.time_to_target_s[chosen])


def test_no_false_alarm_when_outcomes_are_redrawn_from_the_same_distribution() -> None:
    """Disjoint seed sets of the same configurations, checked against each other: the null
    hypothesis holds exactly, so at alpha = 0.05 (Holm over the run) each simulated check
    alarms with probability at most 5%; in 8 checks, 3 or more alarms would have a
    probability under 1%. The outcomes really differ, and the tests really run."""
    populations = [_population("encoder-10-5-10", [10, 5, 10],
                               {"name": "rprop", "variant": "iRprop+"}),
                   _population("xor", [2, 2, 1],
                               {"name": "steepest_descent", "lr": 2.0, "momentum": 0.9})]
    alarms = 0
    tested = 0
    for index in range(SIMULATED_SETS - 1):
        baseline = _run(f"set-{index}", *(_seed_set(p, index) for p in populations))
        rerun = _run(f"set-{index + 1}", *(_seed_set(p, index + 1) for p in populations))
        report = check_run(baseline, rerun, SETTINGS)
        assert all(entry.differing_seeds > SET_SIZE // 2 for entry in report.entries)
        tested += sum(entry.epochs_test.testable for entry in report.entries)
        alarms += report.verdict != "unchanged"
    assert tested >= 2 * (SIMULATED_SETS - 1) - 2
    assert alarms <= 2


def test_the_cli_refuses_a_bad_suite_or_an_unknown_run_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(_suite(entries=[_entry(task="xr")])))
    runner = CliRunner()
    environment = {"OPTISTUDY_HOME": str(tmp_path / "home")}
    bad = runner.invoke(app, ["bench", "run", str(path)], env=environment)
    assert bad.exit_code == 2 and "entries.0.task: unknown task 'xr'" in bad.output
    path.write_text(yaml.safe_dump(_suite()))
    unknown = runner.invoke(app, ["bench", "baseline", str(path), "--from", "nope"],
                            env=environment)
    assert unknown.exit_code == 2 and "suite 'tiny' has no run 'nope'" in unknown.output
    no_baseline = runner.invoke(app, ["bench", "run", str(path), "--check"], env=environment)
    assert no_baseline.exit_code == 2 and "has no baseline" in no_baseline.output
    listed = runner.invoke(app, ["bench", "list", "tiny"], env=environment)
    assert listed.exit_code == 0 and "suite tiny: no runs yet" in listed.output


def test_run_ids_sort_by_time_and_are_unique() -> None:
    moments = [datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC) + timedelta(microseconds=step)
               for step in (0, 1, 999_999, 10**8)]
    ids = [new_run_id(moment) for moment in moments]
    assert sorted(ids) == ids and ids[0].startswith("20260102T030405.000006Z-")
    assert new_run_id(moments[0]) != new_run_id(moments[0])
