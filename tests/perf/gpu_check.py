"""The engine on CUDA: correctness against the CPU on the same seeds, then speed and memory.

Not a test (CI has no GPU): run on a GPU machine with
``python tests/perf/gpu_check.py [--members 1000000] [--epochs 100]``. The issue's floor for
K = 1,000,000 XOR members on an H100/H200 is 5e9 model-epochs per second.

On CUDA, batch epochs of XOR with compiled Rprop run as one fused kernel (pass and update,
``studies/engine/kernels.py``) and the host reads who stopped every ``GPU_CHECK_EVERY``
epochs (``studies/engine/pending.py``); ``check_every=1`` shows what reading every epoch
costs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from studies.engine import TrainConfig, train

ALGORITHMS: dict[str, dict[str, Any]] = {
    "iRprop-": {"name": "rprop", "variant": "iRprop-"},
    "iRprop+": {"name": "rprop", "variant": "iRprop+"},
    "Rprop+": {"name": "rprop", "variant": "Rprop+"},
    "GRprop-sag": {"name": "grprop", "variant": "sag"},
    "momentum": {"name": "steepest_descent", "lr": 0.5, "momentum": 0.9},
    "Adam": {"name": "adam", "lr": 0.05},
    "RMSProp": {"name": "rmsprop", "lr": 0.01},
}


FLOOR = 5e9


def correctness(members: int, epochs: int) -> None:
    """Same seeds on CPU and CUDA (float64): statuses, epochs and final weights; eager for
    every algorithm, compiled (the fused kernel) for the Rprop variants."""
    print(f"correctness: XOR 2-2-1, {members} seeds, up to {epochs} epochs, float64")
    runs = [(name, optimizer, False) for name, optimizer in ALGORITHMS.items()]
    runs += [(f"{name} compiled", optimizer, True) for name, optimizer in ALGORITHMS.items()
             if optimizer["name"] == "rprop"]
    for name, optimizer, compile_kernels in runs:
        config = TrainConfig(task="xor", optimizer=optimizer, seeds=members,
                             compile=compile_kernels,
                             stop={"target": {"below": 0.001}, "max_epochs": epochs})
        cpu = train(config, device="cpu")
        gpu = train(config, device="cuda")
        same = [i for i in range(members)
                if (cpu.status[i], cpu.epochs[i]) == (gpu.status[i], gpu.epochs[i])]
        difference = (cpu.final_weights[same] - gpu.final_weights[same]).abs().max().item()
        success = (cpu.summary()["success_rate"], gpu.summary()["success_rate"])
        print(f"  {name:20} same status and epochs: {len(same)}/{members}; "
              f"max |Δw| over those: {difference:.2e}; success cpu {success[0]:.2f} "
              f"gpu {success[1]:.2f}")


def speed(members: int, epochs: int, dtype: str, compile_kernels: bool,
          check_every: int | None = None) -> None:
    config = TrainConfig(task="xor", optimizer={"name": "rprop", "variant": "iRprop-"},
                         seeds=members, stop={"target": None, "max_epochs": epochs},
                         device="cuda", dtype=dtype, compile=compile_kernels)
    warm = config.model_copy(update={"stop": config.stop.model_copy(update={"max_epochs": 3})})
    train(warm, history_points=0, check_every=check_every)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(config, history_points=0, check_every=check_every)
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    rate = members * (epochs + 1) / wall
    peak = torch.cuda.max_memory_allocated() / members
    reads = "every epoch" if check_every == 1 else "default"
    print(f"speed: K={members:,} {dtype} {'compiled' if compile_kernels else 'eager   '} "
          f"(stops read {reads}): {rate:,.0f} model-epochs/s = {rate / FLOOR:.2f} x the floor "
          f"({epochs} epochs in {wall:.2f} s, engine wall {result.wall_time_s:.2f} s); peak GPU "
          f"memory {peak:.0f} bytes per member")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--check-members", type=int, default=512)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    runs = [("float32", True, None), ("float32", True, 1), ("float32", False, None),
            ("float64", True, None), ("float64", False, None)]
    for dtype, compile_kernels, check_every in runs:  # the headline figure first
        try:
            speed(args.members, args.epochs, dtype, compile_kernels, check_every)
        except Exception as error:  # report and go on: one failure must not hide the rest
            print(f"speed: {dtype} compile={compile_kernels} failed: {error!r}")
    correctness(args.check_members, 300)


if __name__ == "__main__":
    main()
