"""The ``optistudy`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="optistudy: compare neural-network training algorithms, fairly and fast.")


def _fail(error: ValueError) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code=2)


@app.command()
def train(
    spec: Annotated[Path, typer.Argument(help="a training spec (YAML): task, model, optimizer, "
                                              "stop rule, seeds", dir_okay=False)],
    json_output: Annotated[bool, typer.Option("--json", help="print per-seed results and the "
                                                             "summary as JSON")] = False,
    seeds: Annotated[int | None, typer.Option(help="train seeds 0..N-1 instead of the "
                                                   "spec's", min=1)] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto (default: the "
                                                    "spec's)")] = None,
) -> None:
    """Train one configuration over its seeds as one population (no Ray)."""
    from studies.engine import TrainConfig
    from studies.engine import train as run_training
    from studies.specs import SpecError, parse, read_yaml

    try:
        data = read_yaml(spec)
        if seeds is not None:
            data["seeds"] = seeds
        if device is not None:
            data["device"] = device
        config = parse(TrainConfig, data, str(spec))
        result = run_training(config)
    except (SpecError, ValueError) as error:
        _fail(error)
        return
    if json_output:
        json.dump(result.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    summary = result.summary()
    typer.echo(f"{config.task}: {config.optimizer.name} "
               f"{config.optimizer.hyperparameters or ''} over {result.members} seeds "
               f"on {result.device} ({result.evaluation} stop check)")
    for key, value in summary.items():
        typer.echo(f"  {key:26} {_show(value)}")


@app.command()
def compare(
    spec: Annotated[Path | None, typer.Argument(help="a comparison file (default: the "
                                                     "lecture's algorithms on XOR)",
                                                dir_okay=False)] = None,
    seeds: Annotated[int | None, typer.Option(help="seeds per arm (default: the "
                                                   "file's)", min=1)] = None,
) -> None:
    """Train several algorithms on the same seeds and print one table."""
    from studies import compare as comparison

    try:
        loaded = comparison.load(spec)
        typer.echo(f"{loaded.name}: {loaded.description}")
        results = comparison.run(loaded, seeds)
    except ValueError as error:
        _fail(error)
        return
    typer.echo(comparison.table(results))


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


if __name__ == "__main__":
    app()
