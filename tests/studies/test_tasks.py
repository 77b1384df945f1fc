"""Tests for studies.tasks: exact pattern sets, splits, scaling, accuracy, objectives, names."""

import re
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from studies import tasks
from studies.tasks import Dataset, FunctionTask, accuracy


def _dataset(name: str) -> Dataset:
    task = tasks.get(name)
    assert isinstance(task, Dataset)
    return task


def _function(name: str) -> FunctionTask:
    task = tasks.get(name)
    assert isinstance(task, FunctionTask)
    return task


def _t(values: Sequence[float] | Sequence[Sequence[float]]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --- Boolean tasks, written out by hand ------------------------------------------------

TWO_INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]


@pytest.mark.parametrize(
    ("name", "targets"),
    [
        ("and", [[0], [0], [0], [1]]),
        ("or", [[0], [1], [1], [1]]),
        ("xor", [[0], [1], [1], [0]]),
    ],
)
def test_gates_are_the_truth_tables_in_counting_order(
    name: str, targets: Sequence[Sequence[float]]
) -> None:
    dataset = _dataset(name)
    assert dataset.name == name
    assert dataset.kind == "binary"
    assert torch.equal(dataset.inputs, _t(TWO_INPUTS))
    assert torch.equal(dataset.targets, _t(targets))
    assert dataset.inputs.dtype == dataset.targets.dtype == torch.float64
    assert dataset.validation_inputs is None and dataset.validation_targets is None
    assert (dataset.n_patterns, dataset.n_inputs, dataset.n_outputs) == (4, 2, 1)


def test_parity_3_by_hand() -> None:
    dataset = _dataset("parity-3")
    inputs = [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1],
              [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]]
    targets = [[0], [1], [1], [0], [1], [0], [0], [1]]
    assert dataset.name == "parity-3"
    assert dataset.kind == "binary"
    assert torch.equal(dataset.inputs, _t(inputs))
    assert torch.equal(dataset.targets, _t(targets))


@pytest.mark.parametrize("bits", [2, 5, 12])
def test_parity_n_has_every_pattern_once_and_odd_targets(bits: int) -> None:
    dataset = _dataset(f"parity-{bits}")
    assert dataset.inputs.shape == (2**bits, bits)
    assert torch.unique(dataset.inputs, dim=0).shape[0] == 2**bits
    weights = 2 ** torch.arange(bits - 1, -1, -1, dtype=torch.float64)
    assert torch.equal(dataset.inputs @ weights, torch.arange(2**bits, dtype=torch.float64))
    assert torch.equal(dataset.targets[:, 0], dataset.inputs.sum(dim=1) % 2)


def test_parity_2_is_xor() -> None:
    assert torch.equal(_dataset("parity-2").targets, _dataset("xor").targets)


def test_encoder_4_2_4_by_hand() -> None:
    dataset = _dataset("encoder-4-2-4")
    one_hot = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert dataset.name == "encoder-4-2-4"
    assert dataset.kind == "binary"
    assert torch.equal(dataset.inputs, _t(one_hot))
    assert torch.equal(dataset.targets, _t(one_hot))
    assert (dataset.n_patterns, dataset.n_inputs, dataset.n_outputs) == (4, 4, 4)


def test_encoder_targets_do_not_share_memory_with_inputs() -> None:
    dataset = _dataset("encoder-8-3-8")
    dataset.targets[0, 0] = 5.0
    assert dataset.inputs[0, 0] == 1.0


# --- Two spirals -----------------------------------------------------------------------


def test_spirals_size_balance_and_symmetry() -> None:
    dataset = _dataset("spirals")
    assert dataset.inputs.shape == (194, 2)
    assert dataset.targets.shape == (194, 1)
    assert dataset.kind == "binary"
    labels = dataset.targets[:, 0]
    assert set(labels.tolist()) == {0.0, 1.0}
    assert int(labels.sum()) == 97
    class_0 = dataset.inputs[labels == 0]
    class_1 = dataset.inputs[labels == 1]
    assert torch.equal(class_1, -class_0)
    assert dataset.inputs.abs().max() <= 1.0


def test_spirals_follow_the_generator_formula() -> None:
    dataset = _dataset("spirals")
    class_0 = dataset.inputs[dataset.targets[:, 0] == 0]
    # i = 0: φ = 0, r = 6.5 → (0, 6.5) / 6.5; i = 8: φ = π/2, r = 6.5·96/104.
    assert torch.allclose(class_0[0], _t([0.0, 1.0]))
    assert torch.allclose(class_0[8], _t([96 / 104, 0.0]), atol=1e-15)
    radii = class_0.norm(dim=1)
    expected = (104 - torch.arange(97, dtype=torch.float64)) / 104
    assert torch.allclose(radii, expected)


# --- scikit-learn data sets -----------------------------------------------------------

SKLEARN_SIZES = {
    # name: (training patterns, validation patterns, features, outputs, kind, class counts)
    "iris": (112, 38, 4, 3, "multiclass", [50, 50, 50]),
    "digits": (1347, 450, 64, 10, "multiclass",
               [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "breast-cancer": (426, 143, 30, 1, "binary", [212, 357]),
}


def _labels(targets: Tensor, kind: str) -> Tensor:
    return targets.argmax(dim=1) if kind == "multiclass" else targets[:, 0].long()


def _validation(dataset: Dataset) -> tuple[Tensor, Tensor]:
    assert dataset.validation_inputs is not None
    assert dataset.validation_targets is not None
    return dataset.validation_inputs, dataset.validation_targets


@pytest.mark.parametrize("name", list(SKLEARN_SIZES))
def test_sklearn_shapes_and_targets(name: str) -> None:
    train, valid, features, outputs, kind, _ = SKLEARN_SIZES[name]
    dataset = _dataset(name)
    valid_inputs, valid_targets = _validation(dataset)
    assert dataset.kind == kind
    assert dataset.inputs.shape == (train, features)
    assert dataset.targets.shape == (train, outputs)
    assert valid_inputs.shape == (valid, features)
    assert valid_targets.shape == (valid, outputs)
    for targets in (dataset.targets, valid_targets):
        assert targets.dtype == torch.float64
        assert set(targets.unique().tolist()) == {0.0, 1.0}
        if kind == "multiclass":
            assert torch.equal(targets.sum(dim=1), torch.ones(targets.shape[0],
                                                              dtype=torch.float64))


@pytest.mark.parametrize("name", list(SKLEARN_SIZES))
def test_sklearn_split_is_deterministic(name: str) -> None:
    first = _dataset(name)
    tasks._sklearn._load.cache_clear()
    second = _dataset(name)
    assert torch.equal(first.inputs, second.inputs)
    assert torch.equal(first.targets, second.targets)
    assert torch.equal(_validation(first)[0], _validation(second)[0])
    assert torch.equal(_validation(first)[1], _validation(second)[1])


@pytest.mark.parametrize("name", list(SKLEARN_SIZES))
def test_sklearn_split_is_stratified(name: str) -> None:
    *_, kind, counts = SKLEARN_SIZES[name]
    dataset = _dataset(name)
    total = sum(counts)
    for inputs, targets in ((dataset.inputs, dataset.targets), _validation(dataset)):
        observed = torch.bincount(_labels(targets, kind), minlength=len(counts))
        for count, seen in zip(counts, observed.tolist(), strict=True):
            assert abs(seen - count * inputs.shape[0] / total) <= 1


@pytest.mark.parametrize("name", list(SKLEARN_SIZES))
def test_sklearn_train_and_validation_do_not_overlap(name: str) -> None:
    dataset = _dataset(name)
    valid_inputs, _ = _validation(dataset)
    both = torch.cat((dataset.inputs, valid_inputs))
    # Iris holds one duplicated flower; every other row is unique in the raw data.
    raw_duplicates = 1 if name == "iris" else 0
    assert torch.unique(both, dim=0).shape[0] == both.shape[0] - raw_duplicates
    shared = (valid_inputs[:, None, :] == dataset.inputs[None, :, :]).all(dim=2).any(dim=1)
    assert int(shared.sum()) <= raw_duplicates


@pytest.mark.parametrize("name", ["iris", "breast-cancer"])
def test_standardisation_uses_training_statistics_only(name: str) -> None:
    dataset = _dataset(name)
    valid_inputs, _ = _validation(dataset)
    zeros = torch.zeros(dataset.n_inputs, dtype=torch.float64)
    ones = torch.ones(dataset.n_inputs, dtype=torch.float64)
    assert torch.allclose(dataset.inputs.mean(dim=0), zeros, atol=1e-12)
    assert torch.allclose(dataset.inputs.std(dim=0, correction=0), ones, atol=1e-12)
    # Fitted on all the data, the combined mean would be 0 instead.
    combined = torch.cat((dataset.inputs, valid_inputs)).mean(dim=0)
    assert combined.abs().max() > 1e-3


def test_digits_are_pixels_over_16() -> None:
    dataset = _dataset("digits")
    valid_inputs, _ = _validation(dataset)
    for inputs in (dataset.inputs, valid_inputs):
        assert inputs.min() >= 0.0 and inputs.max() <= 1.0
        pixels = inputs * 16
        assert torch.equal(pixels, pixels.round())


def test_callers_cannot_mutate_the_cache() -> None:
    first = _dataset("iris")
    expected = first.inputs.clone()
    first.inputs.zero_()
    _validation(first)[1].zero_()
    second = _dataset("iris")
    assert torch.equal(second.inputs, expected)
    assert _validation(second)[1].sum() == 38


# --- Dataset record --------------------------------------------------------------------


def test_to_returns_a_converted_copy() -> None:
    dataset = _dataset("iris")
    single = dataset.to(dtype=torch.float32)
    assert single.inputs.dtype == single.targets.dtype == torch.float32
    assert _validation(single)[0].dtype == torch.float32
    assert single.name == dataset.name and single.kind == dataset.kind
    same = dataset.to()
    same.inputs.zero_()
    assert dataset.inputs.abs().sum() > 0


def test_dataset_rejects_mismatched_patterns() -> None:
    with pytest.raises(ValueError, match="3 training input patterns but 4 target patterns"):
        Dataset(name="bad", inputs=torch.zeros(3, 2), targets=torch.zeros(4, 1),
                kind="binary", validation_inputs=None, validation_targets=None,
                description="")


# --- accuracy --------------------------------------------------------------------------


def test_binary_accuracy_thresholds_at_one_half() -> None:
    targets = _t([[0], [1], [1], [0]])
    outputs = _t([[0.49], [0.5], [0.2], [0.7]])
    assert accuracy(outputs, targets, "binary").item() == 0.5  # 0.49→0 and 0.5→1 right


def test_binary_accuracy_needs_every_output_unit_right() -> None:
    targets = _t([[1, 0], [0, 1]])
    outputs = _t([[0.9, 0.1], [0.9, 0.9]])
    assert accuracy(outputs, targets, "binary").item() == 0.5


def test_multiclass_accuracy_is_argmax_equality() -> None:
    targets = _t([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    outputs = _t([[0.5, 0.2, 0.3], [0.4, 0.3, 0.3], [0.0, 0.1, 0.2]])
    assert accuracy(outputs, targets, "multiclass").item() == pytest.approx(2 / 3)


def test_accuracy_keeps_leading_population_dimensions() -> None:
    targets = _t([[0], [1], [1], [0]])
    members = torch.stack((
        _t([[0.1], [0.9], [0.8], [0.2]]),   # all right
        _t([[0.9], [0.1], [0.2], [0.8]]),   # all wrong
        _t([[0.1], [0.9], [0.2], [0.8]]),   # half
    ))
    result = accuracy(members, targets, "binary")
    assert result.shape == (3,)
    assert torch.equal(result, _t([1.0, 0.0, 0.5]))
    grid = accuracy(members.expand(2, 3, 4, 1), targets, "binary")
    assert grid.shape == (2, 3)


def test_accuracy_rejects_regression_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="undefined for regression"):
        accuracy(torch.zeros(4, 1), torch.zeros(4, 1), "regression")
    with pytest.raises(ValueError, match=re.escape("got (4, 2) and (4, 1)")):
        accuracy(torch.zeros(4, 2), torch.zeros(4, 1), "binary")
    with pytest.raises(ValueError, match=re.escape("Invalid kind 'ordinal'")):
        accuracy(torch.zeros(4, 1), torch.zeros(4, 1), "ordinal")


# --- function-minimisation tasks -------------------------------------------------------


def _gradient(task: FunctionTask, point: tuple[float, ...]) -> Tensor:
    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    task.objective(x).backward()
    assert x.grad is not None
    return x.grad


def test_quadratic_is_the_lecture_example() -> None:
    task = _function("quadratic")
    assert (task.dimension, task.start, task.minimum, task.minimiser) == (
        2, (0.5, 0.5), -0.5, (-1.0, 0.5))
    start = torch.tensor(task.start, dtype=torch.float64)
    assert task.objective(start).item() == 1.75
    assert torch.equal(_gradient(task, task.start), _t([3.0, 3.0]))
    # The lecture's two steepest-descent steps with α = 0.1.
    step_1 = start - 0.1 * _gradient(task, task.start)
    assert torch.allclose(step_1, _t([0.2, 0.2]))
    assert torch.allclose(_gradient(task, tuple(step_1.tolist())), _t([1.8, 1.2]))


def test_quadratic_minimum_is_stationary_and_convex() -> None:
    task = _function("quadratic")
    minimiser = torch.tensor(task.minimiser, dtype=torch.float64)
    assert task.objective(minimiser).item() == task.minimum
    assert torch.equal(_gradient(task, task.minimiser), torch.zeros(2, dtype=torch.float64))
    hessian = torch.autograd.functional.hessian(task.objective, minimiser)
    assert torch.equal(hessian, _t([[2.0, 2.0], [2.0, 4.0]]))
    assert (torch.linalg.eigvalsh(hessian) > 0).all()


def test_rosenbrock() -> None:
    task = _function("rosenbrock")
    assert (task.dimension, task.start, task.minimum, task.minimiser) == (
        2, (-1.2, 1.0), 0.0, (1.0, 1.0))
    start = torch.tensor(task.start, dtype=torch.float64)
    assert task.objective(start).item() == pytest.approx(24.2)
    assert task.objective(torch.tensor(task.minimiser, dtype=torch.float64)).item() == 0.0
    assert torch.equal(_gradient(task, task.minimiser), torch.zeros(2, dtype=torch.float64))
    # ∂f/∂x = −2(1 − x) − 400x(y − x²), ∂f/∂y = 200(y − x²) at (−1.2, 1).
    assert torch.allclose(_gradient(task, task.start), _t([-215.6, -88.0]))


@pytest.mark.parametrize("name", ["quadratic", "rosenbrock"])
def test_objective_works_on_a_population(name: str) -> None:
    task = _function(name)
    points = torch.randn(3, 4, 2, dtype=torch.float64)
    values = task.objective(points)
    assert values.shape == (3, 4)
    assert torch.equal(values[1, 2], task.objective(points[1, 2]))
    with pytest.raises(ValueError, match=re.escape("dimension 2 in the last axis")):
        task.objective(torch.zeros(3, 3))


# --- names and errors ------------------------------------------------------------------

ALLOWED = ("and, breast-cancer, digits, encoder-N-M-N, iris, or, parity-N, quadratic, "
           "rosenbrock, spirals, xor")


def test_names() -> None:
    assert tasks.names() == ALLOWED.split(", ")


def test_every_fixed_name_builds_its_task() -> None:
    for name in tasks.names():
        if "-N" not in name:
            assert tasks.get(name).name == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x", f"Unknown task 'x' (allowed: {ALLOWED})"),
        ("XOR", f"Unknown task 'XOR' (allowed: {ALLOWED})"),
        ("parity-1", "Invalid task 'parity-1': N must be in 2..12"),
        ("parity-13", "Invalid task 'parity-13': N must be in 2..12"),
        ("parity", "Invalid task 'parity': expected parity-N with N in 2..12"),
        ("parity-x", "Invalid task 'parity-x': expected parity-N with N in 2..12"),
        ("encoder-1-1-1", "Invalid task 'encoder-1-1-1': N must be in 2..64"),
        ("encoder-65-2-65", "Invalid task 'encoder-65-2-65': N must be in 2..64"),
        ("encoder-8-0-8", "Invalid task 'encoder-8-0-8': M must be in 1..8"),
        ("encoder-8-9-8", "Invalid task 'encoder-8-9-8': M must be in 1..8"),
        ("encoder-8-3-4",
         "Invalid task 'encoder-8-3-4': both Ns must be equal (encoder-N-M-N), got 8 and 4"),
        ("encoder-8-3",
         "Invalid task 'encoder-8-3': expected encoder-N-M-N with N in 2..64 and M in 1..N"),
    ],
)
def test_error_messages(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        tasks.get(name)
