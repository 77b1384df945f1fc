"""models.point: a population of points, at ``start`` plus a seed-keyed jitter."""

from __future__ import annotations

import pytest
import torch

from models import Point


def initialised(start: list[float], seeds: list[int], spread: float = 0.0,
                dtype: torch.dtype = torch.float64) -> Point:
    point = Point(len(start), members=len(seeds), dtype=dtype)
    point.initialise(start, torch.tensor(seeds), spread)
    return point


def test_every_member_starts_exactly_at_start_without_spread() -> None:
    point = initialised([0.5, -1.25, 3.0], [1, 2, 3, 4])
    assert point.flat.shape == (4, 3) and point.flat.dtype == torch.float64
    assert point.flat.tolist() == [[0.5, -1.25, 3.0]] * 4
    assert point() is point.flat


def test_jitter_stays_within_the_spread_and_fills_it() -> None:
    start = [0.5, -0.5]
    point = initialised(start, list(range(400)), spread=0.1)
    jitter = point.flat.detach() - torch.tensor(start, dtype=torch.float64)
    assert jitter.abs().max() <= 0.1 + 1e-15
    for coordinate in range(2):  # both signs, close to both ends, in every coordinate
        assert jitter[:, coordinate].min() < -0.09 and jitter[:, coordinate].max() > 0.09
    assert torch.unique(jitter).numel() == jitter.numel()


def test_jitter_depends_only_on_the_seed() -> None:
    seeds = [10, 3, 77, 2**33]
    population = initialised([1.0, 2.0, 3.0], seeds, spread=0.5)
    for i, seed in enumerate(seeds):
        alone = initialised([1.0, 2.0, 3.0], [seed], spread=0.5)
        assert torch.equal(population.flat[i], alone.flat[0]), f"seed {seed}"
    reordered = initialised([1.0, 2.0, 3.0], seeds[::-1], spread=0.5)
    assert torch.equal(reordered.flat, population.flat.flip(0))
    assert not torch.equal(population.flat[0], population.flat[1])


def test_jitter_scales_with_the_spread() -> None:
    """The same seed moves the point in the same direction, spread times as far."""
    small = initialised([0.0, 0.0], [5, 6], spread=0.01)
    large = initialised([0.0, 0.0], [5, 6], spread=2.0)
    torch.testing.assert_close(large.flat, small.flat * 200.0, rtol=1e-14, atol=0)


def test_float32_points() -> None:
    point = initialised([0.1, 0.2], [1, 2], spread=0.05, dtype=torch.float32)
    assert point.flat.dtype == torch.float32
    assert (point.flat - torch.tensor([0.1, 0.2])).abs().max() <= 0.05 + 1e-7


@pytest.mark.parametrize("start", [[1.0], [1.0, 2.0, 3.0], []])
def test_start_of_the_wrong_dimension_names_init_point(start: list[float]) -> None:
    with pytest.raises(ValueError, match=r"init\.point.*2 coordinates"):
        Point(2, members=1).initialise(start, torch.tensor([0]))


def test_layer_weights_are_the_coordinates() -> None:
    point = initialised([0.25, -4.0], [0, 1])
    assert point.layer_weights(point.flat[1]) == [0.25, -4.0]
