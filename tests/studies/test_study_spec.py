"""Study specs: every validation rule with its exact message, the trial configs and search
spaces a valid spec gives, and the shipped catalog."""

from __future__ import annotations

import copy
import importlib.util
import typing
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import optimizers
from studies import catalog, tasks
from studies.engine import TrainConfig
from studies.specs import SpecError, parse, read_yaml
from studies.study import Arm, Choice, FloatRange, IntRange, Objective, Sampler, StudySpec, TaskSpec
from studies.study.arm import OVERRIDABLE

DELETE = object()
NAME_RULE = "(allowed: 1 to 100 of the characters A-Z a-z 0-9 _ . -, not only dots)"
STEP_SIZES = "(allowed: 0 <= delta_min < delta0 <= delta_max)"
ADAPTIVE_FORMS = ("(allowed: {low, high[, log]} (a float range), {type: int, low, high[, step, "
                  "log]} (an int range) or {choices: [...]})")

BASE: dict[str, Any] = {
    "name": "study",
    "tasks": [{"task": "xor", "stop": {"max_epochs": 200}}],
    "arms": [
        {"name": "irprop", "optimizer": "rprop", "fixed": {"variant": "iRprop+"},
         "search": {"delta0": {"low": 0.01, "high": 1, "log": True},
                    "eta_minus": {"low": 0.1, "high": 0.9},
                    "eta_plus": {"low": 1.05, "high": 2.0}},
         "defaults": [{"delta0": 0.1, "eta_minus": 0.5, "eta_plus": 1.2}]},
        {"name": "adam", "optimizer": "adam",
         "search": {"lr": {"low": 0.001, "high": 1, "log": True},
                    "betas[0]": {"low": 0.5, "high": 0.99}}},
        {"name": "momentum", "optimizer": "steepest_descent",
         "search": {"lr": {"low": 0.01, "high": 10, "log": True},
                    "momentum": {"low": 0.0, "high": 0.9}}},
        {"name": "rmsprop", "optimizer": "rmsprop",
         "search": {"lr": {"low": 0.001, "high": 1, "log": True},
                    "alpha": {"low": 0.5, "high": 0.99}}},
        {"name": "grprop", "optimizer": "grprop", "fixed": {"variant": "slr"},
         "search": {"delta": {"low": 1e-8, "high": 1e-2, "log": True},
                    "max_line_search_evals": {"type": "int", "low": 1, "high": 9, "step": 2},
                    "line_search": {"choices": ["none", "wolfe"]}},
         "defaults": [{"delta": 1e-6, "max_line_search_evals": 3, "line_search": "none"}]},
    ],
    "seeds_per_trial": 4,
    "trials_per_arm": 3,
}


def _changed(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each ``(dotted.path, value)`` set, missing mappings created (``DELETE``
    removes the key)."""
    data = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse(StudySpec, data, "study.yaml")
    return caught.value.problems


def _spec(data: dict[str, Any]) -> StudySpec:
    return parse(StudySpec, data, "study.yaml")


def test_the_base_spec_is_valid() -> None:
    spec = _spec(BASE)
    assert [arm.name for arm in spec.arms] == ["irprop", "adam", "momentum", "rmsprop", "grprop"]


# Each case: the changes to BASE, then the exact problems (field path: what is wrong).
CASES: dict[str, tuple[list[tuple[str, Any]], list[str]]] = {
    # --- names ------------------------------------------------------------------------------
    "study name with a slash": (
        [("name", "a/b")], [f"name: name 'a/b' is not allowed {NAME_RULE}"]),
    "study name of only dots": (
        [("name", "..")], [f"name: name '..' is not allowed {NAME_RULE}"]),
    "study name too long": (
        [("name", "x" * 101)], [f"name: name '{'x' * 101}' is not allowed {NAME_RULE}"]),
    "empty study name": ([("name", "")], [f"name: name '' is not allowed {NAME_RULE}"]),
    "arm name with a plus": (
        [("arms.0.name", "Rprop+")], [f"arms.0.name: name 'Rprop+' is not allowed {NAME_RULE}"]),
    "task label with a space": (
        [("tasks.0.label", "x or")], [f"tasks.0.label: name 'x or' is not allowed {NAME_RULE}"]),
    "arm names repeat": (
        [("arms.1.name", "irprop")],
        ["arms.1.name: arm name 'irprop' is already used by arms.0 (allowed: distinct names)"]),
    "task names repeat": (
        [("tasks", [{"task": "xor"}, {"task": "xor"}])],
        ["tasks.1.task: task name 'xor' is already used by tasks.0 (allowed: distinct names; "
         "give a task a label)"]),
    "task labels repeat": (
        [("tasks", [{"task": "xor", "label": "a"}, {"task": "and", "label": "a"}])],
        ["tasks.1.label: task name 'a' is already used by tasks.0 (allowed: distinct names; "
         "give a task a label)"]),
    # --- unknown things ---------------------------------------------------------------------
    "unknown task": (
        [("tasks.0.task", "xnor")],
        [f"tasks.0.task: Unknown task 'xnor' (allowed: {', '.join(tasks.names())})"]),
    "unknown optimizer": (
        [("arms.0.optimizer", "lbfgs")],
        ["arms.0.optimizer: Unknown optimizer 'lbfgs' (allowed: adam, grprop, perceptron_rule, "
         "rmsprop, rprop, steepest_descent)"]),
    "unknown sampler": (
        [("sampler", {"name": "bayes"})],
        ["sampler.name: Input should be 'tpe', 'cmaes', 'gp', 'random' or 'grid'"]),
    "unknown scheduler": (
        [("scheduler", {"name": "hyperband"})],
        ["scheduler.name: Input should be 'none' or 'asha'"]),
    "unknown objective": (
        [("objective", "fastest")],
        ["objective.goal: Input should be 'epochs', 'success_rate' or 'both'"]),
    "unknown top-level field": (
        [("trails_per_arm", 3), ("trials_per_arm", DELETE)],
        ["trials_per_arm: Field required", "trails_per_arm: Extra inputs are not permitted"]),
    "unknown fixed hyperparameter": (
        [("arms.0.fixed.speed", 3)],
        ["arms.0.fixed.speed: unknown hyperparameter 'speed' for rprop (allowed: delta0, "
         "delta_max, delta_min, eta_minus, eta_plus, variant)"]),
    "unknown searched hyperparameter": (
        [("arms.1.search.learning_rate", {"low": 0.1, "high": 1})],
        ["arms.1.search.learning_rate: unknown hyperparameter 'learning_rate' to search for "
         "adam (allowed: betas[0], betas[1], eps, lr)"]),
    "a tuple searched whole": (
        [("arms.1.search.betas", {"low": 0.1, "high": 0.9})],
        ["arms.1.search.betas: unknown hyperparameter 'betas' to search for adam (allowed: "
         "betas[0], betas[1], eps, lr)"]),
    "unknown name in a default": (
        [("arms.0.defaults.0.speed", 1)],
        ["arms.0.defaults.0.speed: 'speed' is not searched (allowed: delta0, eta_minus, "
         "eta_plus)"]),
    "unknown override": (
        [("arms.0.overrides", {"speed": 1})],
        [f"arms.0.overrides.speed: unknown field 'speed' (allowed: {', '.join(OVERRIDABLE)})"]),
    "the task overridden": (
        [("arms.0.overrides", {"task": "and"})],
        [f"arms.0.overrides.task: unknown field 'task' (allowed: {', '.join(OVERRIDABLE)})"]),
    # --- fixed and searched -----------------------------------------------------------------
    "fixed and searched": (
        [("arms.0.fixed.delta0", 0.1)],
        ["arms.0.search.delta0: 'delta0' is both fixed and searched (allowed: one of the two)"]),
    "a tuple fixed whole and an element searched": (
        [("arms.1.fixed", {"betas": [0.9, 0.999]})],
        ["arms.1.search.betas[0]: 'betas[0]' is searched but fixed by fixed.betas (allowed: "
         "one of the two)"]),
    "a tuple fixed whole and by element": (
        [("arms.1.fixed", {"betas": [0.9, 0.999], "betas[1]": 0.99}),
         ("arms.1.search.betas[0]", DELETE)],
        ["arms.1.fixed.betas[1]: 'betas[1]' is also fixed by fixed.betas (allowed: one of the "
         "two)"]),
    "a tuple of the wrong length": (
        [("arms.1.fixed", {"betas": [0.9]}), ("arms.1.search.betas[0]", DELETE)],
        ["arms.1.fixed.betas: [0.9] is not a list of 2 values (allowed: e.g. [0.9, 0.999])"]),
    "a required hyperparameter neither fixed nor searched": (
        [("arms.2.search.lr", DELETE)],
        ["arms.2: steepest_descent needs lr (allowed: fixed.lr or search.lr)"]),
    # --- ranges -----------------------------------------------------------------------------
    "low above high": (
        [("arms.1.search.lr", {"low": 1, "high": 0.5})],
        ["arms.1.search.lr: low (1.0) must be < high (0.5)"]),
    "low equal to high": (
        [("arms.1.search.lr", {"low": 0.5, "high": 0.5})],
        ["arms.1.search.lr: low (0.5) must be < high (0.5)"]),
    "log range from zero": (
        [("arms.1.search.lr", {"low": 0, "high": 1, "log": True})],
        ["arms.1.search.lr: log: true needs low > 0, got low 0.0"]),
    "log range below zero": (
        [("arms.1.search.lr", {"low": -1, "high": 1, "log": True})],
        ["arms.1.search.lr: log: true needs low > 0, got low -1.0"]),
    "infinite bound": (
        [("arms.1.search.lr", {"low": 0.1, "high": float("inf")})],
        ["arms.1.search.lr.high: Input should be a finite number"]),
    "typo in a range": (
        [("arms.1.search.lr", {"low": 0.1, "high": 1, "logg": True})],
        ["arms.1.search.lr.logg: Extra inputs are not permitted"]),
    "unknown range type": (
        [("arms.1.search.lr", {"type": "integer", "low": 1, "high": 2})],
        ["arms.1.search.lr: type 'integer' is unknown (allowed: float, int; or "
         "{choices: [...]})"]),
    "a bare number as a search parameter": (
        [("arms.1.search.lr", 0.1)],
        [f"arms.1.search.lr: 0.1 is not a search parameter {ADAPTIVE_FORMS}"]),
    "int range with a fractional bound": (
        [("arms.4.search.max_line_search_evals", {"type": "int", "low": 1.5, "high": 9})],
        ["arms.4.search.max_line_search_evals.low: Input should be a valid integer, got a "
         "number with a fractional part"]),
    "int range low above high": (
        [("arms.4.search.max_line_search_evals", {"type": "int", "low": 9, "high": 1})],
        ["arms.4.search.max_line_search_evals: low (9) must be < high (1)"]),
    "int log range from zero": (
        [("arms.4.search.max_line_search_evals",
          {"type": "int", "low": 0, "high": 9, "log": True})],
        ["arms.4.search.max_line_search_evals: log: true needs low > 0, got low 0"]),
    "int log range with a step": (
        [("arms.4.search.max_line_search_evals",
          {"type": "int", "low": 1, "high": 9, "log": True, "step": 2})],
        ["arms.4.search.max_line_search_evals: log: true needs step 1, got step 2"]),
    "int range off its step": (
        [("arms.4.search.max_line_search_evals", {"type": "int", "low": 1, "high": 8, "step": 2})],
        ["arms.4.search.max_line_search_evals: high - low (7) must be a multiple of step (2)"]),
    "int range step zero": (
        [("arms.4.search.max_line_search_evals", {"type": "int", "low": 1, "high": 8, "step": 0})],
        ["arms.4.search.max_line_search_evals.step: Input should be greater than or equal to 1"]),
    "empty choices": (
        [("arms.4.search.line_search", {"choices": []})],
        ["arms.4.search.line_search.choices: choices is empty (allowed: a list of at least one "
         "value)"]),
    "repeated choices": (
        [("arms.4.search.line_search", {"choices": ["none", "wolfe", "none"]})],
        ["arms.4.search.line_search.choices: choices repeat 'none' (allowed: distinct values)"]),
    # --- the constraints of ALGORITHMS.md, over every value the sampler may draw ----------
    "eta_minus range reaching 1": (
        [("arms.0.search.eta_minus", {"low": 0.1, "high": 1.5})],
        ["arms.0.search.eta_minus.high: 1.5 is out of bounds (allowed: 0 < eta_minus < 1)"]),
    "eta_minus range from 0": (
        [("arms.0.search.eta_minus", {"low": 0, "high": 0.9})],
        ["arms.0.search.eta_minus.low: 0.0 is out of bounds (allowed: 0 < eta_minus < 1)"]),
    "eta_plus range from 1": (
        [("arms.0.search.eta_plus", {"low": 1.0, "high": 2.0})],
        ["arms.0.search.eta_plus.low: 1.0 is out of bounds (allowed: eta_plus > 1)"]),
    "eta_plus fixed below 1": (
        [("arms.0.fixed.eta_plus", 0.9), ("arms.0.search.eta_plus", DELETE),
         ("arms.0.defaults", [])],
        ["arms.0.fixed.eta_plus: 0.9 is out of bounds (allowed: eta_plus > 1)"]),
    "delta0 range above the default delta_max": (
        [("arms.0.search.delta0", {"low": 0.01, "high": 100, "log": True})],
        [f"arms.0.search.delta0.high: delta0 = 100.0 is not <= delta_max = 50.0 (the "
         f"optimizer's default) {STEP_SIZES}"]),
    "delta0 range overlapping a delta_max range": (
        [("arms.0.search.delta_max", {"low": 0.5, "high": 10}),
         ("arms.0.defaults.0.delta_max", 1.0)],
        [f"arms.0.search.delta0.high: delta0 = 1.0 is not <= delta_max = 0.5 "
         f"(search.delta_max.low) {STEP_SIZES}"]),
    "delta_min fixed above the delta0 range": (
        [("arms.0.fixed.delta_min", 0.05)],
        [f"arms.0.fixed.delta_min: delta_min = 0.05 is not < delta0 = 0.01 (search.delta0.low) "
         f"{STEP_SIZES}"]),
    "delta0 range below the default delta_min": (
        [("arms.0.search.delta0", {"low": 1e-7, "high": 1, "log": True})],
        [f"arms.0.search.delta0.low: delta_min = 1e-06 (the optimizer's default) is not < "
         f"delta0 = 1e-07 {STEP_SIZES}"]),
    "delta_min below 0": (
        [("arms.0.fixed.delta_min", -0.1)],
        ["arms.0.fixed.delta_min: -0.1 is out of bounds (allowed: delta_min >= 0)"]),
    "momentum range reaching 1": (
        [("arms.2.search.momentum", {"low": 0, "high": 1})],
        ["arms.2.search.momentum.high: 1.0 is out of bounds (allowed: 0 <= momentum < 1)"]),
    "momentum choice below 0": (
        [("arms.2.search.momentum", {"choices": [0, -0.1]})],
        ["arms.2.search.momentum.choices.1: -0.1 is out of bounds (allowed: 0 <= momentum < 1)"]),
    "learning rate fixed at 0": (
        [("arms.2.fixed.lr", 0), ("arms.2.search.lr", DELETE)],
        ["arms.2.fixed.lr: 0 is out of bounds (allowed: lr > 0)"]),
    "learning rate not a number": (
        [("arms.2.fixed.lr", "fast"), ("arms.2.search.lr", DELETE)],
        ["arms.2.fixed.lr: 'fast' is not a finite number (allowed: lr > 0)"]),
    "learning rate range from 0": (
        [("arms.3.search.lr", {"low": 0, "high": 1})],
        ["arms.3.search.lr.low: 0.0 is out of bounds (allowed: lr > 0)"]),
    "eps fixed at 0": (
        [("arms.1.fixed.eps", 0)], ["arms.1.fixed.eps: 0 is out of bounds (allowed: eps > 0)"]),
    "alpha range reaching 1": (
        [("arms.3.search.alpha", {"low": 0.5, "high": 1.0})],
        ["arms.3.search.alpha.high: 1.0 is out of bounds (allowed: 0 <= alpha < 1)"]),
    "betas[0] range reaching 1": (
        [("arms.1.search.betas[0]", {"low": 0.5, "high": 1.0})],
        ["arms.1.search.betas[0].high: 1.0 is out of bounds (allowed: 0 <= betas[0] < 1)"]),
    "betas fixed with beta2 at 1": (
        [("arms.1.fixed.betas", [0.9, 1.0]), ("arms.1.search.betas[0]", DELETE)],
        ["arms.1.fixed.betas.1: 1.0 is out of bounds (allowed: 0 <= betas[1] < 1)"]),
    "delta range from 0": (
        [("arms.4.search.delta", {"low": 0, "high": 1e-2})],
        ["arms.4.search.delta.low: 0.0 is out of bounds (allowed: delta > 0)"]),
    "sigma1 fixed above the default sigma2": (
        [("arms.4.fixed.sigma1", 0.95)],
        ["arms.4.fixed.sigma1: sigma1 = 0.95 is not < sigma2 = 0.9 (the optimizer's default) "
         "(allowed: 0 < sigma1 < sigma2 < 1)"]),
    "an int hyperparameter range from 0": (
        [("arms.4.search.max_line_search_evals", {"type": "int", "low": 0, "high": 8})],
        ["arms.4.search.max_line_search_evals.low: 0 is out of bounds (allowed: an integer "
         ">= 1)"]),
    # --- what only the optimizer itself knows: checked by constructing it ------------------
    "unknown variant": (
        [("arms.0.fixed.variant", "Rprop++")],
        ["arms.0.fixed.variant: Invalid variant: 'Rprop++' (allowed: 'Rprop+', 'Rprop-', "
         "'iRprop+', 'iRprop-')"]),
    "unknown choice of line search": (
        [("arms.4.search.line_search", {"choices": ["none", "armijo"]}),
         ("arms.4.defaults", [])],
        ["arms.4.search.line_search.choices.1: Invalid line_search: 'armijo' (allowed: 'none', "
         "'wolfe')"]),
    # --- defaults (points_to_evaluate) ------------------------------------------------------
    "a default missing a searched name": (
        [("arms.0.defaults.0.eta_plus", DELETE)],
        ["arms.0.defaults.0: missing eta_plus (a default gives every searched name: delta0, "
         "eta_minus, eta_plus)"]),
    "a default outside its range": (
        [("arms.0.defaults.0.eta_plus", 2.5)],
        ["arms.0.defaults.0.eta_plus: 2.5 is outside the search range (allowed: a number in "
         "[1.05, 2.0])"]),
    "a default off the int range's step": (
        [("arms.4.defaults.0.max_line_search_evals", 4)],
        ["arms.4.defaults.0.max_line_search_evals: 4 is outside the search range (allowed: an "
         "integer in 1..9 with step 2)"]),
    "a default not among the choices": (
        [("arms.4.defaults.0.line_search", "armijo")],
        ["arms.4.defaults.0.line_search: 'armijo' is outside the search range (allowed: one of "
         "'none', 'wolfe')"]),
    "a default for an arm that searches nothing": (
        [("arms.0.search", {}), ("arms.0.defaults", [{"delta0": 0.1}])],
        ["arms.0.defaults.0.delta0: 'delta0' is not searched (allowed: none: the arm searches "
         "nothing)"]),
    "more defaults than trials": (
        [("arms.0.defaults", [{"delta0": 0.1, "eta_minus": 0.5, "eta_plus": 1.2},
                              {"delta0": 0.0125, "eta_minus": 0.5, "eta_plus": 1.2}]),
         ("trials_per_arm", 1)],
        ["arms.0.defaults: 2 defaults but trials_per_arm is 1 (allowed: at most trials_per_arm "
         "defaults: each is one of the arm's trials)"]),
    # --- budget, seeds, sampler, scheduler, resources ---------------------------------------
    "no tasks": ([("tasks", [])], ["tasks: List should have at least 1 item after validation, "
                                   "not 0"]),
    "no arms": ([("arms", [])], ["arms: List should have at least 1 item after validation, "
                                 "not 0"]),
    "no seeds": (
        [("seeds_per_trial", 0)], ["seeds_per_trial: Input should be greater than or equal to 1"]),
    "too many seeds": (
        [("seeds_per_trial", 100_001)],
        ["seeds_per_trial: Input should be less than or equal to 100000"]),
    "no trials": (
        [("trials_per_arm", 0)], ["trials_per_arm: Input should be greater than or equal to 1"]),
    "too many trials": (
        [("trials_per_arm", 100_001)],
        ["trials_per_arm: Input should be less than or equal to 100000"]),
    "negative first seed": (
        [("seed_start", -1)], ["seed_start: Input should be greater than or equal to 0"]),
    "seeds past 2**62": (
        [("seed_start", 2**62 - 2)], ["seed_start: seeds must be in 0..2**62-1"]),
    "negative sampler seed": (
        [("sampler", {"seed": -1})], ["sampler.seed: Input should be greater than or equal to 0"]),
    "float range under the grid sampler": (
        [("sampler", {"name": "grid"}), ("arms", [BASE["arms"][4], BASE["arms"][1]])],
        ["arms.0.search.delta: a float range cannot be gridded (allowed under sampler 'grid': "
         "{choices: [...]} or {type: int, low, high, step})",
         "arms.1.search.lr: a float range cannot be gridded (allowed under sampler 'grid': "
         "{choices: [...]} or {type: int, low, high, step})",
         "arms.1.search.betas[0]: a float range cannot be gridded (allowed under sampler "
         "'grid': {choices: [...]} or {type: int, low, high, step})"]),
    "ASHA with two objectives": (
        [("scheduler", {"name": "asha", "grace_period": 10}), ("objective", "both")],
        ["scheduler.name: scheduler 'asha' stops trials on one metric; objective 'both' has "
         "two (allowed: none)"]),
    "ASHA grace period longer than training": (
        [("scheduler", {"name": "asha", "grace_period": 500})],
        ["scheduler.grace_period: 500 epochs is more than max_epochs 200 of task 'xor' with "
         "arm 'irprop' (allowed: at most the smallest max_epochs)"]),
    "ASHA reduction factor 1": (
        [("scheduler", {"name": "asha", "reduction_factor": 1})],
        ["scheduler.reduction_factor: Input should be greater than 1"]),
    "no CPUs": ([("resources", {"cpus": 0})], ["resources.cpus: Input should be greater than 0"]),
    "more than one GPU": (
        [("resources", {"gpus": 1.5})],
        ["resources.gpus: Input should be less than or equal to 1"]),
    "negative GPUs": (
        [("resources", {"gpus": -0.5})],
        ["resources.gpus: Input should be greater than or equal to 0"]),
    # --- every arm × task must give a valid training config ---------------------------------
    "a task that cannot train": (
        [("tasks.0.mode", "minibatch")], ["tasks.0: mode 'minibatch' needs batch_size"]),
    "a task with the wrong layers": (
        [("tasks.0.model", {"layers": [3, 2, 1]})],
        ["tasks.0: model.layers [3, 2, 1] must start with the task's 2 inputs and end with its "
         "1 outputs"]),
    "a task with a bad field": (
        [("tasks.0.stop", {"max_epochs": 0})],
        ["tasks.0.stop.max_epochs: Input should be greater than or equal to 1"]),
    "an arm's overrides that do not fit a task": (
        [("arms.0.overrides", {"loss": "bce", "model": {"output": "linear"}})],
        ["arms.0.overrides: loss 'bce' needs model.output sigmoid, got 'linear' (on task "
         "'xor', tasks.0)"]),
    "an arm's override with a bad value": (
        [("arms.0.overrides", {"mode": "sometimes"})],
        ["arms.0.overrides.mode: Input should be 'batch', 'online' or 'minibatch'"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_spec_is_rejected_with_the_field_and_what_is_allowed(case: str) -> None:
    changes, expected = CASES[case]
    assert _problems(_changed(*changes)) == expected


def test_every_problem_of_a_spec_is_listed_with_the_source() -> None:
    data = _changed(("arms.0.search.eta_minus", {"low": 0.1, "high": 1.5}),
                    ("arms.1.search.lr", {"low": 0, "high": 1, "log": True}))
    with pytest.raises(SpecError) as caught:
        parse(StudySpec, data, "study.yaml")
    assert str(caught.value).splitlines() == [
        "study.yaml: invalid spec",
        "  arms.0.search.eta_minus.high: 1.5 is out of bounds (allowed: 0 < eta_minus < 1)",
        "  arms.1.search.lr: log: true needs low > 0, got low 0.0",
    ]


def _pretend_installed(monkeypatch: pytest.MonkeyPatch, installed: set[str],
                       missing: set[str]) -> None:
    find_spec = importlib.util.find_spec

    def patched(name: str, package: str | None = None) -> Any:
        if name in missing:
            return None
        if name in installed:
            return object()
        return find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", patched)


@pytest.mark.parametrize(("sampler", "package", "message"), [
    ("cmaes", "cmaes", "sampler.name: sampler 'cmaes' needs the package cmaes (install it: pip "
                       "install cmaes)"),
    ("gp", "scipy", "sampler.name: sampler 'gp' needs the package scipy (install it: pip "
                    "install scipy)"),
])
def test_a_sampler_without_its_package_is_rejected(monkeypatch: pytest.MonkeyPatch,
                                                   sampler: str, package: str,
                                                   message: str) -> None:
    _pretend_installed(monkeypatch, set(), {package})
    assert _problems(_changed(("sampler", {"name": sampler}))) == [message]


def test_cmaes_is_rejected_for_two_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, {"cmaes"}, set())
    assert _problems(_changed(("sampler", {"name": "cmaes"}), ("objective", "both"))) == [
        "sampler.name: sampler 'cmaes' optimises one objective; objective 'both' has two "
        "(allowed: tpe, gp, random, grid)"]


# --- what a valid spec gives ---------------------------------------------------------------

def test_names_of_the_safe_alphabet_are_allowed() -> None:
    spec = _spec(_changed(("name", "a.b_c-9"), ("arms.0.name", ".hidden")))
    assert (spec.name, spec.arms[0].name) == ("a.b_c-9", ".hidden")


def test_a_trial_config_merges_task_overrides_fixed_and_sampled_values() -> None:
    data = _changed(("seed_start", 5), ("arms.1.fixed", {"betas[1]": 0.99}),
                    ("arms.1.overrides", {"mode": "online", "loss": "half_sse"}),
                    ("resources", {"gpus": 0.25}))
    spec = _spec(data)
    config = spec.train_config(spec.tasks[0], spec.arms[1], {"lr": 0.01, "betas[0]": 0.8})
    assert isinstance(config, TrainConfig)
    assert config.optimizer.name == "adam"
    assert config.optimizer.hyperparameters == {"lr": 0.01, "betas": (0.8, 0.99)}
    assert (config.mode, config.loss, config.stop.max_epochs) == ("online", "half_sse", 200)
    assert config.seed_list == [5, 6, 7, 8] == spec.seeds
    assert config.device == "cuda"


def test_a_trial_config_of_the_first_seeds_uses_a_seed_count() -> None:
    spec = _spec(BASE)
    config = spec.train_config(spec.tasks[0], spec.arms[0], spec.arms[0].defaults[0])
    assert config.seeds == 4 and config.device == "cpu"
    assert config.optimizer.hyperparameters == {"variant": "iRprop+", "delta0": 0.1,
                                                "eta_minus": 0.5, "eta_plus": 1.2}


def test_a_trial_config_needs_exactly_the_searched_values() -> None:
    spec = _spec(BASE)
    with pytest.raises(ValueError, match=r"arm 'adam' searches \['betas\[0\]', 'lr'\]; got "
                                         r"values for \['lr'\]"):
        spec.train_config(spec.tasks[0], spec.arms[1], {"lr": 0.1})


@pytest.mark.parametrize(("fixed", "sampled", "expected"), [
    ({}, {"betas[0]": 0.8}, {"betas": (0.8, 0.999)}),
    ({"betas[1]": 0.99}, {"betas[0]": 0.8}, {"betas": (0.8, 0.99)}),
    ({"betas": [0.85, 0.95]}, {"lr": 0.1}, {"betas": [0.85, 0.95], "lr": 0.1}),
    ({"eps": 1e-6}, {"betas[1]": 0.9}, {"eps": 1e-6, "betas": (0.9, 0.9)}),
])
def test_fixed_and_gathers_tuple_elements(fixed: dict[str, Any], sampled: dict[str, Any],
                                          expected: dict[str, Any]) -> None:
    arm = Arm.model_validate({"name": "adam", "optimizer": "adam", "fixed": fixed})
    assert arm.fixed_and(sampled) == expected


def test_distributions_are_optuna_distributions() -> None:
    spec = _spec(BASE)
    assert spec.distributions(spec.arms[0]) == {
        "delta0": FloatDistribution(0.01, 1.0, log=True),
        "eta_minus": FloatDistribution(0.1, 0.9),
        "eta_plus": FloatDistribution(1.05, 2.0),
    }
    assert spec.distributions(spec.arms[4]) == {
        "delta": FloatDistribution(1e-8, 1e-2, log=True),
        "max_line_search_evals": IntDistribution(1, 9, step=2),
        "line_search": CategoricalDistribution(["none", "wolfe"]),
    }


def test_search_parameters_are_told_apart_by_their_keys() -> None:
    arm = _spec(BASE).arms[4]
    assert isinstance(arm.search["delta"], FloatRange)
    assert isinstance(arm.search["max_line_search_evals"], IntRange)
    assert isinstance(arm.search["line_search"], Choice)
    explicit = Arm.model_validate({"name": "a", "optimizer": "adam",
                                   "search": {"lr": {"type": "float", "low": 0.1, "high": 1}}})
    assert isinstance(explicit.search["lr"], FloatRange)


def test_a_spec_survives_a_round_trip_through_json() -> None:
    spec = _spec(_changed(("scheduler", {"name": "asha", "grace_period": 10}),
                          ("objective", "success_rate")))
    assert StudySpec.model_validate_json(spec.model_dump_json()) == spec
    assert StudySpec.model_validate(spec.model_dump()) == spec


@pytest.mark.parametrize(("goal", "metrics", "modes", "directions"), [
    ("epochs", ["epochs_penalised_mean"], ["min"], ["minimize"]),
    ("success_rate", ["success_rate"], ["max"], ["maximize"]),
    ("both", ["epochs_penalised_mean", "success_rate"], ["min", "max"],
     ["minimize", "maximize"]),
])
def test_objectives_name_their_metrics_and_directions(goal: str, metrics: list[str],
                                                      modes: list[str],
                                                      directions: list[str]) -> None:
    objective = Objective.model_validate(goal)
    assert objective == Objective.model_validate({"goal": goal})
    assert objective.targets() == (metrics, modes, directions)
    assert objective.targets().directions == directions


def test_the_default_objective_is_epochs() -> None:
    assert _spec(BASE).objective.targets().metrics == ["epochs_penalised_mean"]


@pytest.mark.parametrize(("name", "kind"), [
    ("tpe", optuna.samplers.TPESampler),
    ("random", optuna.samplers.RandomSampler),
    ("gp", optuna.samplers.GPSampler),
    ("cmaes", optuna.samplers.CmaEsSampler),
])
def test_samplers_are_built(name: str, kind: type) -> None:
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        pytest.skip("the cmaes package is not installed")
    sampler = Sampler.model_validate({"name": name, "seed": 3})
    assert isinstance(sampler.build(_spec(BASE).arms[0].search), kind)


def test_the_grid_sampler_grids_choices_and_int_ranges() -> None:
    arm = Arm.model_validate({
        "name": "grprop", "optimizer": "grprop",
        "search": {"variant": {"choices": ["sag", "slr"]},
                   "max_line_search_evals": {"type": "int", "low": 1, "high": 5, "step": 2}}})
    spec = _spec(_changed(("sampler", {"name": "grid"}), ("arms", [arm.model_dump()])))
    sampler = spec.sampler.build(arm.search)
    assert isinstance(sampler, optuna.samplers.GridSampler)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: 0.0 if trial.suggest_categorical("variant", ["sag", "slr"])
                   == "sag" else trial.suggest_int("max_line_search_evals", 1, 5, step=2), 6)
    assert len(study.trials) == 6
    with pytest.raises(ValueError, match="float ranges cannot be gridded: lr"):
        Sampler(name="grid").build(_spec(BASE).arms[1].search)


def test_task_specs_take_every_training_config_field_but_optimizer_seeds_and_device() -> None:
    task_fields = set(TaskSpec.model_fields) - {"label"}
    assert task_fields == set(TrainConfig.model_fields) - {"optimizer", "seeds", "device"}
    assert sorted(task_fields - {"task"}) == OVERRIDABLE
    hints = typing.get_type_hints(TaskSpec)
    train_hints = typing.get_type_hints(TrainConfig)
    for name in task_fields:
        ours, theirs = TaskSpec.model_fields[name], TrainConfig.model_fields[name]
        assert hints[name] == train_hints[name], name
        assert ours.get_default(call_default_factory=True) == theirs.get_default(
            call_default_factory=True), name
        assert ours.metadata == theirs.metadata, name


def test_a_task_is_named_by_its_label() -> None:
    spec = _spec(_changed(("tasks", [{"task": "xor"}, {"task": "xor", "label": "xor-online",
                                                       "mode": "online"}])))
    assert [task.name for task in spec.tasks] == ["xor", "xor-online"]


# --- the catalog ---------------------------------------------------------------------------

def test_the_catalog_ships_its_studies() -> None:
    assert catalog.names() == ["digits", "encoder-10-5-10", "parity-4", "spirals", "xor"]


@pytest.mark.parametrize("name", catalog.names())
def test_every_catalog_study_is_valid(name: str) -> None:
    spec = catalog.load(name)
    assert spec.name == name
    for task in spec.tasks:
        for arm in spec.arms:
            for point in [arm.lowest(), *arm.defaults]:
                assert isinstance(spec.train_config(task, arm, point), TrainConfig)


def test_the_xor_catalog_compares_every_algorithm_and_variant() -> None:
    spec = catalog.load("xor")
    assert {arm.optimizer for arm in spec.arms} == set(optimizers.names())
    variants = {(arm.optimizer, arm.fixed.get("variant")) for arm in spec.arms}
    rprop = {("rprop", variant) for variant in ("Rprop+", "Rprop-", "iRprop+", "iRprop-")}
    assert rprop <= variants
    assert {("grprop", "sag"), ("grprop", "slr")} <= variants
    published = {"delta0": 0.1, "eta_minus": 0.5, "eta_plus": 1.2}
    for arm in spec.arms:
        if arm.optimizer == "rprop":
            assert published in arm.defaults, arm.name
    assert (spec.seeds_per_trial, spec.trials_per_arm) == (32, 12)


def test_an_unknown_catalog_study_is_reported() -> None:
    with pytest.raises(ValueError, match="Unknown catalog study 'mnist' \\(allowed: digits, "):
        catalog.load("mnist")


def test_a_spec_written_as_json_keeps_its_exponent_floats(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML's default) reads JSON's 1e-06 as a string; specs use YAML 1.2 floats
    path = tmp_path / "spec.json"
    path.write_text('{"delta_min": 1e-06, "lr": 1E3, "quoted": "1e-06", "seeds": 32}')
    assert read_yaml(path) == {"delta_min": 1e-06, "lr": 1000.0, "quoted": "1e-06",
                               "seeds": 32}
