"""What a study has done so far, read from its folder and from the Optuna storage (the
ledger of trials): for ``study list``, ``study show`` and the runner's resume."""

from __future__ import annotations

import optuna

from studies.study.arm import Arm
from studies.study.home import Home, read_json, write_json
from studies.study.home import study_state as state
from studies.study.spec import StudySpec, TaskSpec


def experiment_name(spec: StudySpec, task: TaskSpec, arm: Arm) -> str:
    """The name of the (task, arm) study in Optuna and of its Ray Tune experiment."""
    return f"{spec.name}.{task.name}.{arm.name}"


def completed_trials(storage: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def load(home: Home, name: str) -> StudySpec:
    """The spec of registered study ``name``."""
    path = home.study_dir(name) / "spec.json"
    if not path.exists():
        raise ValueError(f"no study named {name!r} in {home.root} "
                         f"(known: {', '.join(home.studies()) or 'none'})")
    return StudySpec.model_validate(read_json(path))


def record_status(home: Home, name: str, **fields: object) -> None:
    """Update the study's ``status.json`` with ``fields`` (state, driver pid, times)."""
    path = home.study_dir(name) / "status.json"
    write_json(path, {**(read_json(path) if path.exists() else {}), **fields})


def progress(home: Home, name: str) -> tuple[int, int]:
    """(completed trials, budget) over every (task, arm) of the study."""
    spec = load(home, name)
    done = sum(completed_trials(home.optuna_storage, experiment_name(spec, task, arm))
               for task in spec.tasks for arm in spec.arms)
    return done, spec.trials_per_arm * len(spec.tasks) * len(spec.arms)


def list_lines(home: Home) -> list[str]:
    names = home.studies()
    if not names:
        return [f"no studies in {home.root}"]
    lines = [f"{'study':30} {'state':12} trials"]
    for name in names:
        done, total = progress(home, name)
        lines.append(f"{name:30} {state(home, name):12} {done}/{total}")
    return lines


def show_lines(home: Home, name: str) -> list[str]:
    spec = load(home, name)
    lines = [f"study {name}: {state(home, name)}",
             f"  {spec.description}" if spec.description else "",
             f"  objective {spec.objective.goal}, sampler {spec.sampler.name}, "
             f"{spec.seeds_per_trial} seeds per trial, {spec.trials_per_arm} trials per arm"]
    for task in spec.tasks:
        for arm in spec.arms:
            done = completed_trials(home.optuna_storage, experiment_name(spec, task, arm))
            line = f"  {task.name}/{arm.name}: {done}/{spec.trials_per_arm} trials"
            path = home.study_dir(name) / "results" / f"{task.name}.{arm.name}.json"
            if path.exists():
                best = read_json(path).get("best")
                if best:
                    metrics = best["metrics"]
                    line += (f"; best success {metrics.get('success_rate')}, epochs median "
                             f"{metrics.get('epochs_to_target_median')}, params {best['params']}")
            lines.append(line)
    return [line for line in lines if line]
