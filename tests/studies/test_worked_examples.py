"""The lecture's worked examples, run through the engine (``studies.engine.train``).

References are plain Python written from the lecture (Negnevitsky's steps 1–4, the
perceptron rule, steepest descent on F(x)), not from the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from studies.engine import TrainConfig, train

BOOK_XOR_ORDER = [3, 1, 2, 0]  # (1,1)→0, (0,1)→1, (1,0)→1, (0,0)→0 in the task's pattern order
XOR = {0: ((0.0, 0.0), 0.0), 1: ((0.0, 1.0), 1.0), 2: ((1.0, 0.0), 1.0), 3: ((1.0, 1.0), 0.0)}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _delta_rule_pattern(w: dict[str, float], x1: float, x2: float, yd: float,
                        alpha: float) -> dict[str, float]:
    """One pattern of back-propagation, steps 2–3 of the lecture (thresholds on a −1 input)."""
    y3 = _sigmoid(x1 * w["w13"] + x2 * w["w23"] - w["t3"])
    y4 = _sigmoid(x1 * w["w14"] + x2 * w["w24"] - w["t4"])
    y5 = _sigmoid(y3 * w["w35"] + y4 * w["w45"] - w["t5"])
    e = yd - y5
    d5 = y5 * (1 - y5) * e
    d3 = y3 * (1 - y3) * d5 * w["w35"]  # weights before this pattern's update
    d4 = y4 * (1 - y4) * d5 * w["w45"]
    return {
        "w35": w["w35"] + alpha * y3 * d5, "w45": w["w45"] + alpha * y4 * d5,
        "t5": w["t5"] + alpha * -1 * d5,
        "w13": w["w13"] + alpha * x1 * d3, "w23": w["w23"] + alpha * x2 * d3,
        "t3": w["t3"] + alpha * -1 * d3,
        "w14": w["w14"] + alpha * x1 * d4, "w24": w["w24"] + alpha * x2 * d4,
        "t4": w["t4"] + alpha * -1 * d4,
        "y3": y3, "y4": y4, "y5": y5, "d5": d5,
    }


BOOK_WEIGHTS = {"w13": 0.5, "w14": 0.9, "w23": 0.4, "w24": 1.0, "w35": -1.2, "w45": 1.1,
                "t3": 0.8, "t4": -0.1, "t5": 0.3}


def test_the_reference_reproduces_the_books_first_iteration() -> None:
    after = _delta_rule_pattern(BOOK_WEIGHTS, 1.0, 1.0, 0.0, 0.1)
    book = {"y3": 0.5250, "y4": 0.8808, "y5": 0.5097, "d5": -0.1274, "w35": -1.2067,
            "w45": 1.0888, "t5": 0.3127, "w13": 0.5038, "w23": 0.4038, "t3": 0.7962,
            "w14": 0.8985, "w24": 0.9985, "t4": -0.0985}
    for name, value in book.items():
        assert round(after[name], 4) == pytest.approx(value, abs=1e-12), name


def _book_spec(epochs: int) -> TrainConfig:
    w = BOOK_WEIGHTS
    return TrainConfig(
        task="xor", model={"type": "mlp", "layers": [2, 2, 1]},
        init={"scheme": "explicit", "weights": [
            {"weight": [[w["w13"], w["w23"]], [w["w14"], w["w24"]]], "bias": [-w["t3"], -w["t4"]]},
            {"weight": [[w["w35"], w["w45"]]], "bias": [-w["t5"]]}]},
        loss="half_sse", optimizer={"name": "steepest_descent", "lr": 0.1}, mode="online",
        order=BOOK_XOR_ORDER, stop={"target": None, "max_epochs": epochs}, seeds=1)


def test_online_delta_rule_follows_the_lecture_step_by_step() -> None:
    """Three epochs of the book's example (12 patterns) through the engine equal the
    lecture's steps 1–4 computed by hand."""
    weights = dict(BOOK_WEIGHTS)
    for _ in range(3):
        for pattern in BOOK_XOR_ORDER:
            (x1, x2), yd = XOR[pattern]
            weights = _delta_rule_pattern(weights, x1, x2, yd, 0.1)
    result = train(_book_spec(3))
    hidden, output = result.member(0)["final_weights"]
    got = {"w13": hidden["weight"][0][0], "w23": hidden["weight"][0][1],
           "w14": hidden["weight"][1][0], "w24": hidden["weight"][1][1],
           "t3": -hidden["bias"][0], "t4": -hidden["bias"][1],
           "w35": output["weight"][0][0], "w45": output["weight"][0][1], "t5": -output["bias"][0]}
    for name, value in got.items():
        assert value == pytest.approx(weights[name], abs=1e-14), name


def test_perceptron_learns_and_as_in_the_book() -> None:
    """Negnevitsky's AND example (w = (0.3, −0.1), θ = 0.2 fixed, α = 0.1) in exact
    arithmetic: weights in tenths (w = (3, −1), θ = 2, α = 1), which float64 represents
    exactly; in decimal tenths 0.3 − 0.1 is not exactly 0.2 in binary and the book's
    X = 0 cases tip the other way. The book: 5 epochs, final w = (0.1, 0.1)."""
    config = TrainConfig(
        task="and", model={"type": "perceptron", "train_threshold": False},
        init={"scheme": "explicit", "weights": [{"weight": [[3.0, -1.0]], "bias": [-2.0]}]},
        loss="half_sse", optimizer={"name": "perceptron_rule", "lr": 1.0}, mode="online",
        order="fixed",
        stop={"target": {"quantity": "error_rate", "below": 1e-9}, "max_epochs": 50}, seeds=1)
    result = train(config)
    assert result.status == ["converged"]
    assert result.epochs == [5]
    assert result.member(0)["final_weights"] == [{"weight": [[1.0, 1.0]], "bias": [-2.0]}]


def test_steepest_descent_on_the_lectures_quadratic() -> None:
    config = TrainConfig(task="quadratic", optimizer={"name": "steepest_descent", "lr": 0.1},
                         stop={"target": None, "max_epochs": 2}, seeds=1)
    result = train(config)
    x2 = result.final_weights[0]
    assert x2.tolist() == pytest.approx([0.02, 0.08], abs=1e-15)
    one_step = train(config.model_copy(update={"stop": config.stop.model_copy(
        update={"max_epochs": 1})}))
    assert one_step.final_weights[0].tolist() == pytest.approx([0.2, 0.2], abs=1e-15)


def test_rprop_finds_the_rosenbrock_minimum() -> None:
    config = TrainConfig(task="rosenbrock", optimizer={"name": "rprop", "variant": "iRprop-"},
                         stop={"target": {"quantity": "gap", "below": 1e-6},
                               "max_epochs": 5000}, seeds=1)
    result = train(config)
    assert result.status == ["converged"]
    assert result.final_quantity[0] < 1e-6
    torch.testing.assert_close(result.final_weights[0], torch.tensor([1.0, 1.0],
                                                                     dtype=torch.float64),
                               atol=3e-3, rtol=0)
