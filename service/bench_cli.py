"""``optistudy bench``: run a benchmark suite, promote a run to its baseline, check a run
against the baseline (exit 1 on a regression), list a suite's runs."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Regression benchmarks: pinned suites run on "
                                                   "Ray, checked seed by seed against a "
                                                   "baseline run.")

REGRESSION_EXIT_CODE = 1

SuiteArgument = Annotated[str, typer.Argument(
    help="a suite file (YAML) or a shipped suite's name, e.g. classic")]


@bench_app.command("run")
def bench_run(
    suite: SuiteArgument,
    check: Annotated[bool, typer.Option(
        "--check", help="compare with the baseline; exit 1 on a regression")] = False,
    baseline: Annotated[str | None, typer.Option(
        help="the run id to check against (implies --check; default: the suite's "
             "baseline)")] = None,
    address: Annotated[str | None, typer.Option(
        help="a Ray cluster to run on (default: RAY_ADDRESS, else a local Ray)")] = None,
) -> None:
    """Run every entry of a suite over its seeds on Ray, record it in MLflow, store it under
    the data dir and print a table; with --check, also each entry's verdict against the
    baseline. Exit codes: 0 done (no regression), 1 regression, 2 error or not comparable
    (the suite or its seeds changed since the baseline)."""
    from service.cli import _fail
    from studies.bench import BenchRun, BenchStore, check_run, load_suite
    from studies.bench.check import ensure_comparable
    from studies.bench.fingerprint import config_digest
    from studies.bench.run import run_suite
    from studies.bench.table import check_lines, run_table
    from studies.study.home import Home

    home = Home.from_environment()
    try:
        spec = load_suite(suite)
        store = BenchStore(home, spec.name)
        reference: BenchRun | None = None
        if check or baseline is not None:
            reference = store.baseline(baseline)
            configs = spec.configs()
            ensure_comparable(reference, {e: config_digest(c) for e, c in configs.items()},
                              {e: c.seed_list for e, c in configs.items()})
    except ValueError as error:
        _fail(error)
        return
    typer.echo(f"suite {spec.name}: {len(spec.entries)} entries"
               + (f", checked against run {reference.run_id}" if reference else ""))
    against = None if reference is None else partial(check_run, reference,
                                                     settings=spec.check)
    try:
        run, report = run_suite(spec, home, address=address, check=against,
                                progress=typer.echo)
    except Exception as error:  # exit 1 means a regression: a failure must not look like one
        _fail(ValueError(f"the bench run failed: {error}"))
        return
    typer.echo("")
    typer.echo(run_table(run))
    typer.echo(f"run {run.run_id} stored in {store.run_dir(run.run_id)} "
               f"({run.wall_time_s:.0f} s; MLflow run {run.mlflow_run_id})")
    if report is not None:
        typer.echo("")
        for line in check_lines(report):
            typer.echo(line)
        if report.verdict == "regressed":
            raise typer.Exit(code=REGRESSION_EXIT_CODE)


@bench_app.command("baseline")
def bench_baseline(
    suite: SuiteArgument,
    run_id: Annotated[str, typer.Option("--from", help="the stored run to promote (see "
                                                       "'optistudy bench list SUITE')")],
) -> None:
    """Make a stored run the suite's baseline: its per-seed outcomes are what later checks
    compare with."""
    from service.cli import _fail
    from studies.bench import BenchStore
    from studies.study.home import Home

    try:
        store = BenchStore(Home.from_environment(), _suite_name(suite))
        run = store.promote(run_id)
    except ValueError as error:
        _fail(error)
        return
    seeds = sum(len(result.seeds) for result in run.entries.values())
    typer.echo(f"baseline of suite {store.suite}: run {run.run_id} ({len(run.entries)} "
               f"entries, {seeds} seeds, commit {run.environment.get('optistudy_commit')})")


@bench_app.command("list")
def bench_list(suite: SuiteArgument) -> None:
    """A suite's stored runs, oldest first, with their check verdicts; the baseline marked."""
    from service.cli import _fail
    from studies.bench import BenchStore
    from studies.bench.table import list_lines
    from studies.study.home import Home

    try:
        store = BenchStore(Home.from_environment(), _suite_name(suite))
        lines = list_lines(store)
    except ValueError as error:
        _fail(error)
        return
    for line in lines:
        typer.echo(line)


def _suite_name(reference: str) -> str:
    """The suite's name: from its file, else the reference itself (a shipped or stored
    suite's name)."""
    from studies.bench import load_suite

    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_suite(reference).name
    return reference
