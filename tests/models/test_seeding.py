"""models.seeding: counter-based random numbers, a pure function of (seed, stream, index)."""

from __future__ import annotations

import math
from itertools import permutations as all_orders

import pytest
import torch
from torch import Tensor

from models.seeding import mix, permutations, uniform

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(state: int, count: int) -> list[int]:
    """Vigna's reference SplitMix64 generator in plain Python integers (unsigned 64-bit)."""
    outputs = []
    for _ in range(count):
        state = (state + GOLDEN) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        outputs.append(z ^ (z >> 31))
    return outputs


def as_int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def test_mix_is_the_splitmix64_finaliser() -> None:
    """mix(k·golden) is the k-th SplitMix64 output from state 0 (first: 0xE220A8397B1DCDAF)."""
    assert splitmix64(0, 1) == [0xE220A8397B1DCDAF]  # the published first output
    counters = torch.tensor([as_int64((k * GOLDEN) & MASK64) for k in range(1, 2001)])
    expected = [as_int64(value) for value in splitmix64(0, 2000)]
    assert mix(counters).tolist() == expected


def test_mix_is_a_bijection_on_a_sample() -> None:
    values = torch.arange(-50_000, 50_000, dtype=torch.int64) * 7919
    assert torch.unique(mix(values)).numel() == values.numel()


@pytest.mark.parametrize("device", DEVICES)
def test_row_i_is_seed_i_computed_alone(device: str) -> None:
    seeds = torch.tensor([5, 0, 2**40 + 3, -3, 17, 1, 2**62], device=device)
    together = uniform(seeds, 3, 50)
    assert together.shape == (7, 50)
    for i, seed in enumerate(seeds.tolist()):
        alone = uniform(torch.tensor([seed], device=device), 3, 50)
        assert torch.equal(together[i], alone[0]), f"seed {seed}"


def test_rows_do_not_depend_on_population_size_or_order() -> None:
    base = [4, 9, 1, 12]
    reference = {seed: uniform(torch.tensor([seed]), 7, 20)[0] for seed in base}
    for order in all_orders(base):
        for size in (1, 2, 4):
            population = torch.tensor(order[:size])
            rows = uniform(population, 7, 20)
            for row, seed in zip(rows, order[:size], strict=True):
                assert torch.equal(row, reference[seed]), (order, size, seed)


def test_index_i_does_not_depend_on_count() -> None:
    """Value j of a row is a function of index j: a longer request extends a shorter one."""
    seeds = torch.tensor([0, 1, 99])
    assert torch.equal(uniform(seeds, 2, 13), uniform(seeds, 2, 1000)[:, :13])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_same_bits_as_cpu() -> None:
    seeds = torch.arange(-20, 300) * 1_000_003
    assert torch.equal(uniform(seeds.cuda(), 5, 300).cpu(), uniform(seeds, 5, 300))


def test_different_seeds_and_streams_give_different_numbers() -> None:
    """1000 (seed, stream) rows of 100 values: no value repeats anywhere (53 random bits)."""
    rows = torch.cat([uniform(torch.arange(100), stream, 100) for stream in range(10)])
    assert torch.unique(rows).numel() == rows.numel()


def test_values_lie_in_the_unit_interval() -> None:
    values = uniform(torch.arange(-50, 50), 0, 2000)
    assert values.dtype == torch.float64
    assert values.min() >= 0.0 and values.max() < 1.0


def test_float32_never_rounds_up_to_one() -> None:
    """Seed 24, stream 0, index 253031 is 0.99999997951… in float64: above 1 − 2⁻²⁵, so
    rounding it to float32 would give exactly 1."""
    seed = torch.tensor([24])
    wide = uniform(seed, 0, 253_032)[0, -1].item()
    assert wide >= 1.0 - 2.0**-25
    narrow = uniform(seed, 0, 253_032, dtype=torch.float32)
    assert narrow.dtype == torch.float32
    assert narrow.max().item() < 1.0 and narrow.min().item() >= 0.0
    assert abs(narrow[0, -1].item() - wide) <= 2.0**-24


def test_mean_variance_and_histogram_of_100k_draws() -> None:
    draws = uniform(torch.arange(100), 11, 1000).flatten()
    n = draws.numel()
    # mean of U(0,1): 1/2 with standard error √(1/12/n); variance 1/12 with standard error
    # √((1/80 − 1/144)/n); allow five standard errors
    assert abs(draws.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(draws.var().item() - 1 / 12) < 5 * math.sqrt((1 / 80 - 1 / 144) / n)
    counts = torch.histc(draws, bins=100, min=0.0, max=1.0)
    expected = n / 100
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    # 99 degrees of freedom: mean 99, standard deviation 14
    assert 99 - 5 * 14 < chi2 < 99 + 5 * 14


def correlation(a: Tensor, b: Tensor) -> float:
    a = a.flatten() - a.mean()
    b = b.flatten() - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


def test_neighbouring_seeds_streams_and_indices_are_uncorrelated() -> None:
    by_seed = uniform(torch.arange(200), 0, 500)  # [seed, index]
    bound = 5 / math.sqrt(by_seed[1:].numel())
    assert abs(correlation(by_seed[1:], by_seed[:-1])) < bound
    by_stream = torch.stack([uniform(torch.arange(10), s, 500) for s in range(20)])
    assert abs(correlation(by_stream[1:], by_stream[:-1])) < 5 / math.sqrt(19 * 10 * 500)
    assert abs(correlation(by_seed[:, 1:], by_seed[:, :-1])) < bound
    # the same seed, stream and index shifted together must not repeat the pattern either
    assert abs(correlation(by_seed[1:, 1:], by_seed[:-1, :-1])) < bound


def test_permutations_are_permutations() -> None:
    orders = permutations(torch.arange(50), 3, 17)
    assert orders.shape == (50, 17) and orders.dtype == torch.int64
    assert torch.equal(orders.sort(dim=1).values, torch.arange(17).expand(50, -1))


def test_permutations_are_reproducible_per_seed() -> None:
    seeds = torch.tensor([8, 3, 1000, -1])
    orders = permutations(seeds, 4, 30)
    assert torch.equal(orders, permutations(seeds, 4, 30))
    for i, seed in enumerate(seeds.tolist()):
        assert torch.equal(orders[i], permutations(torch.tensor([seed]), 4, 30)[0])
    assert torch.equal(permutations(seeds.flip(0), 4, 30), orders.flip(0))


def test_permutations_differ_between_seeds_and_streams() -> None:
    by_seed = permutations(torch.arange(40), 0, 20)
    assert len({tuple(row) for row in by_seed.tolist()}) == 40
    by_stream = torch.cat([permutations(torch.tensor([5]), s, 20) for s in range(40)])
    assert len({tuple(row) for row in by_stream.tolist()}) == 40


def test_all_orders_of_four_are_about_equally_likely() -> None:
    """24 orders over 4800 seeds: each about 200 times (chi-square, 23 degrees of freedom)."""
    orders = permutations(torch.arange(4800), 9, 4)
    counts: dict[tuple[int, ...], int] = {}
    for row in orders.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert len(counts) == 24
    chi2 = sum((count - 200) ** 2 / 200 for count in counts.values())
    assert chi2 < 23 + 5 * math.sqrt(2 * 23)
