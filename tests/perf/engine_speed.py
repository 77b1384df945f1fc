"""Engine speed: XOR 2-2-1 populations against the same work one model at a time.

Not a test: a benchmark that prints model-epochs per second for the population engine and
for a plain one-model-at-a-time torch loop, measured side by side in one run, and their
ratio. Usage: ``.venv/bin/python tests/perf/engine_speed.py [--members 10000] [--epochs 300]``.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn

from studies.engine import TrainConfig, train

REPEATS = 3
"""Each rate is the best of this many runs: the machine is shared and noisy, and the best
run is the one least disturbed by others."""
XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)


def population_rate(members: int, epochs: int, variant: str, device: str,
                    compile_kernels: bool, dtype: str) -> tuple[float, float]:
    """Model-epochs per second of the engine (no early stop: every member runs every epoch)."""
    config = TrainConfig(
        task="xor", model={"type": "mlp", "layers": [2, 2, 1]}, loss="sse",
        optimizer={"name": "rprop", "variant": variant}, mode="batch",
        stop={"target": None, "max_epochs": epochs}, seeds=members, device=device,
        compile=compile_kernels, dtype=dtype)
    warm_up = config.model_copy(update={"stop": config.stop.model_copy(update={"max_epochs": 3})})
    train(warm_up, history_points=0)  # imports, allocations and (if asked) compilation
    wall = min(train(config, history_points=0).wall_time_s for _ in range(REPEATS))
    return members * (epochs + 1) / wall, wall


def one_at_a_time_rate(models: int, epochs: int) -> float:
    """Model-epochs per second of a plain torch loop training one XOR network at a time."""
    return max(_one_at_a_time(models, epochs) for _ in range(REPEATS))


def _one_at_a_time(models: int, epochs: int) -> float:
    start = time.perf_counter()
    for seed in range(models):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid()).double()
        optimizer = torch.optim.Rprop(net.parameters(), lr=0.1)
        for _ in range(epochs + 1):
            optimizer.zero_grad()
            loss = ((XOR_TARGETS - net(XOR_INPUTS)) ** 2).sum()
            loss.backward()
            optimizer.step()
    return models * (epochs + 1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--single-models", type=int, default=10)
    parser.add_argument("--variant", default="iRprop-")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float32",
                        help="of the populations (the one-at-a-time loop runs float64)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled run")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"populations in {args.dtype}")
    single = one_at_a_time_rate(args.single_models, args.epochs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rate, wall = population_rate(args.members, args.epochs, args.variant, args.device, False,
                                 args.dtype)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"one model at a time : {single:14,.0f} model-epochs/s ({args.single_models} models)")
    print(f"population K={args.members:<7,}: {rate:14,.0f} model-epochs/s "
          f"({args.variant}, eager, {args.epochs} epochs in {wall:.2f} s)")
    print(f"ratio               : {rate / single:14,.0f}x")
    if not args.no_compile:
        fast, wall = population_rate(args.members, args.epochs, args.variant, args.device, True,
                                     args.dtype)
        print(f"population compiled : {fast:14,.0f} model-epochs/s "
              f"(torch.compile, {args.epochs} epochs in {wall:.2f} s)")
        print(f"ratio               : {fast / single:14,.0f}x")
    print(f"peak RSS growth     : {(rss_after - rss_before) / args.members:14.2f} KiB per member")


if __name__ == "__main__":
    main()
