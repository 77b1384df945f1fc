"""The ``optistudy`` command line: train and compare, output and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()

SPEC = {
    "task": "xor",
    "model": {"type": "mlp", "layers": [2, 2, 1]},
    "optimizer": {"name": "rprop", "variant": "iRprop+"},
    "stop": {"target": {"quantity": "sse", "below": 0.001}, "max_epochs": 300},
    "seeds": 6,
}


def _write(tmp_path: Path, spec: dict[str, object], name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_train_json_gives_per_seed_results_and_a_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(_write(tmp_path, SPEC)), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"]["optimizer"] == {"name": "rprop", "variant": "iRprop+"}
    assert data["stop_evaluation"] == "batch"
    members = data["members"]
    assert [m["seed"] for m in members] == list(range(6))
    for member in members:
        assert member["status"] in ("converged", "max_epochs", "diverged", "stalled")
        hidden, output = member["final_weights"]
        assert len(hidden["weight"]) == 2 and len(hidden["weight"][0]) == 2
        assert len(output["weight"]) == 1 and len(output["bias"]) == 1
    converged = [m for m in members if m["status"] == "converged"]
    assert data["summary"]["success_rate"] == len(converged) / 6
    assert data["summary"]["epochs_to_target_median"] is not None
    for member in converged:
        assert member["final_quantity"] < 0.001


def test_train_prints_a_short_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(_write(tmp_path, SPEC)), "--seeds", "3"])
    assert result.exit_code == 0, result.output
    assert "over 3 seeds" in result.stdout
    assert "success_rate" in result.stdout and "epochs_to_target_median" in result.stdout


@pytest.mark.parametrize(("change", "message"), [
    ({"optimizer": {"name": "rprop", "eta_plus": 0.9}},
     "optimizer.eta_plus: Invalid eta_plus: 0.9 (allowed: eta_plus > 1)"),
    ({"optimizer": {"name": "rprop", "speed": 3}},
     "optimizer: unknown hyperparameter 'speed' for rprop (allowed: delta0, delta_max, "
     "delta_min, eta_minus, eta_plus, variant)"),
    ({"optimizer": {"name": "lbfgs"}}, "optimizer.name: Unknown optimizer 'lbfgs'"),
    ({"task": "xnor"}, "task: Unknown task 'xnor'"),
    ({"seeds": 0}, "seeds: a seed count must be in 1..10000000"),
    ({"stop": {"max_epochs": 0}}, "stop.max_epochs: Input should be greater than or equal to 1"),
    ({"mode": "minibatch"}, "mode 'minibatch' needs batch_size"),
    ({"model": {"layers": [3, 2, 1]}},
     "model.layers [3, 2, 1] must start with the task's 2 inputs and end with its 1 outputs"),
    ({"loss": "bce", "model": {"output": "linear"}},
     "loss 'bce' needs model.output sigmoid, got 'linear'"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_a_bad_spec_names_the_field_and_nothing_runs(tmp_path: Path, change: dict[str, object],
                                                     message: str) -> None:
    result = runner.invoke(app, ["train", str(_write(tmp_path, {**SPEC, **change}))])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: [xor\n")
    result = runner.invoke(app, ["train", str(broken)])
    assert result.exit_code == 2 and "not valid YAML" in result.stderr
    listed = tmp_path / "list.yaml"
    listed.write_text("- xor\n")
    result = runner.invoke(app, ["train", str(listed)])
    assert result.exit_code == 2 and "must be a YAML mapping" in result.stderr


def test_compare_prints_one_row_per_arm(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", "--seeds", "4"])
    assert result.exit_code == 0, result.output
    for arm in ("perceptron", "delta-rule-online", "momentum-0.9", "Rprop+", "Rprop-",
                "iRprop+", "iRprop-", "GRprop-sag", "GRprop-slr", "RMSProp", "Adam"):
        assert any(line.startswith(arm + " ") for line in result.stdout.splitlines()), arm
    assert "of 4" in result.stdout


def test_compare_validates_every_arm_before_training(tmp_path: Path) -> None:
    spec = {"name": "bad", "base": {"task": "xor", "seeds": 2},
            "arms": {"good": {"optimizer": {"name": "adam"}},
                     "bad": {"optimizer": {"name": "adam", "lr": -1}}}}
    result = runner.invoke(app, ["compare", str(_write(tmp_path, spec))])
    assert result.exit_code == 2
    assert "arms.bad: invalid spec" in result.stderr
    assert "optimizer.lr: Invalid lr: -1.0 (allowed: lr > 0)" in result.stderr


def test_the_installed_command_runs_an_example() -> None:
    example = Path(__file__).parents[2] / "studies" / "examples" / "xor-irprop.yaml"
    command = Path(sys.executable).parent / "optistudy"
    completed = subprocess.run([str(command), "train", str(example), "--seeds", "4"],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "success_rate" in completed.stdout


def test_which_studies_begin_ray_before_the_spec_is_checked(tmp_path: Path) -> None:
    """``study run`` / ``resume`` begin Ray's start early only for a study with trials to
    run; what cannot be read is left to the full check (which says what is wrong)."""
    from service.cli import _named_in, _study_state
    from studies.study.home import Home, write_json

    home = Home(tmp_path)
    assert _study_state(home, "fresh") == "new"
    write_json(home.study_dir("done") / "status.json", {"state": "complete"})
    assert _study_state(home, "done") == "complete"
    write_json(home.study_dir("dead") / "status.json", {"state": "running", "driver_pid": 0})
    assert _study_state(home, "dead") == "interrupted"  # its driver is gone: resume it
    write_json(home.study_dir("live") / "status.json",
               {"state": "running", "driver_pid": os.getpid()})
    assert _study_state(home, "live") == "running"
    home.study_dir("torn").mkdir(parents=True)
    (home.study_dir("torn") / "status.json").write_text('{"state": "runn')
    assert _study_state(home, "torn") is None
    assert _study_state(home, "../outside") is None and _study_state(home, None) is None
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"name: xor\n\xff\xfe")
    assert _named_in(spec) is None
    spec.write_text("name: xor\ntasks: []\n")
    assert _named_in(spec) == "xor"


def test_a_spec_that_is_not_utf8_is_refused_with_an_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"name: xor\n\xff\xfe")
    result = runner.invoke(app, ["study", "run", str(spec)], env={"OPTISTUDY_HOME": str(tmp_path)})
    assert result.exit_code == 2 and "error" in result.output
