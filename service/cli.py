"""The ``optistudy`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.bench_cli import bench_app

if TYPE_CHECKING:
    from service.settings import Settings
    from studies.study import StudySpec
    from studies.study.home import Home

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="optistudy: compare neural-network training algorithms, fairly and fast.")
app.add_typer(bench_app, name="bench")


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


study_app = typer.Typer(no_args_is_help=True, help="Studies: arms × tasks searched by Optuna "
                                                   "on Ray Tune, resumable.")
app.add_typer(study_app, name="study")


@study_app.command("run")
def study_run(
    spec: Annotated[Path, typer.Argument(help="a study spec (YAML), e.g. "
                                              "studies/catalog/xor.yaml", dir_okay=False)],
    address: Annotated[str | None, typer.Option(help="a Ray cluster to run on (default: "
                                                     "RAY_ADDRESS, else a local Ray)")] = None,
) -> None:
    """Validate a study spec, then run every (task, arm) to its budget and print a table."""
    from studies.study.home import Home

    home = Home.from_environment()
    if _study_state(home, _named_in(spec)) not in (None, "complete", "running"):
        _begin_ray(address)
    from studies.specs import SpecError, parse, read_yaml
    from studies.study import StudySpec, runner

    try:
        study = parse(StudySpec, read_yaml(spec), str(spec))
        runner.checkpoint_seconds()  # a bad setting: refused before the study is registered
        if not runner.start(study, home):
            typer.echo(f"study {study.name} exists with this spec: continuing it")
    except (SpecError, ValueError) as error:
        _fail(error)
        return
    _execute(study, home, address)


@study_app.command("resume")
def study_resume(
    name: Annotated[str, typer.Argument(help="the study's name")],
    address: Annotated[str | None, typer.Option(help="a Ray cluster to run on")] = None,
) -> None:
    """Continue an interrupted study to exactly its budget (finished trials are kept)."""
    from studies.study.home import Home

    home = Home.from_environment()
    if _study_state(home, name) not in (None, "new", "complete", "running"):
        _begin_ray(address)
    from studies.study import ledger, runner

    try:
        runner.checkpoint_seconds()
        study = ledger.load(home, name)
        if ledger.state(home, name) == "running":
            raise ValueError(f"study {name!r} is running (another driver is alive)")
    except ValueError as error:
        _fail(error)
        return
    _execute(study, home, address)


def _named_in(spec: Path) -> str | None:
    """The study name a spec file gives, if it can be read (the full check comes later)."""
    import yaml

    try:
        data = yaml.safe_load(spec.read_bytes())
    except (OSError, ValueError, yaml.YAMLError):  # the full check says what is wrong
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _study_state(home: Home, name: str | None) -> str | None:
    """What the data dir says of study ``name`` (``home.study_state``; ``new``: none
    recorded), or None where that cannot be read (the full check says why)."""
    from studies.study.home import study_state

    if name is None:
        return None
    try:
        state = study_state(home, name)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return "new" if state == "unknown" else state


def _begin_ray(address: str | None) -> None:
    """Begin Ray's start on a thread while the driver imports its modules and checks the
    spec (``studies/driver_start.py``): each takes seconds, and overlapped they take the
    longer of the two. Called where a study has trials to run; a complete study starts no
    Ray, and a refused spec is answered as soon as it was before."""
    from studies import driver_start

    driver_start.begin(address)


def _execute(study: StudySpec, home: Home, address: str | None) -> None:
    from studies.study import runner
    from studies.study.table import comparison_table

    typer.echo(f"study {study.name}: {len(study.tasks)} task(s) x {len(study.arms)} arm(s), "
               f"{study.trials_per_arm} trials per arm, {study.seeds_per_trial} seeds per trial")
    outcomes = runner.execute(study, home, address=address, progress=typer.echo)
    typer.echo("")
    typer.echo(comparison_table(outcomes))


@study_app.command("end")
def study_end(name: Annotated[str, typer.Argument(help="the study's name")]) -> None:
    """End an interrupted study instead of resuming it: the Optuna trials and MLflow runs
    its dead driver left RUNNING end FAIL and KILLED."""
    from studies.study import cancel
    from studies.study.home import Home

    try:
        ended = cancel.end_interrupted(Home.from_environment(), name)
    except ValueError as error:
        _fail(error)
        return
    typer.echo(f"study {name}: {ended.trials} Optuna trial(s) failed, {ended.runs} MLflow "
               "run(s) killed")


@study_app.command("report")
def study_report(
    name: Annotated[str, typer.Argument(help="the study's name")],
    seeds: Annotated[int, typer.Option(help="fresh seeds to re-run each arm's best "
                                            "configuration on", min=2)] = 64,
) -> None:
    """Which arm is best, by how much, how sure: each arm's best configuration re-run on
    fresh paired seeds; Markdown and HTML in the study's folder, logged to MLflow."""
    from studies.study import report
    from studies.study.home import Home

    try:
        path = report.build(Home.from_environment(), name, seeds=seeds, progress=typer.echo)
    except ValueError as error:
        _fail(error)
        return
    typer.echo("")
    typer.echo(path.read_text())
    typer.echo(f"written to {path} and {path.with_suffix('.html')}")


@study_app.command("list")
def study_list() -> None:
    """The studies in the data dir, with their state."""
    from studies.study import ledger
    from studies.study.home import Home

    home = Home.from_environment()
    for line in ledger.list_lines(home):
        typer.echo(line)


@study_app.command("show")
def study_show(name: Annotated[str, typer.Argument(help="the study's name")]) -> None:
    """A study's state, progress per (task, arm) and best value so far."""
    from studies.study import ledger
    from studies.study.home import Home

    try:
        lines = ledger.show_lines(Home.from_environment(), name)
    except ValueError as error:
        _fail(error)
        return
    for line in lines:
        typer.echo(line)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="the port to serve on (loopback only)")] = 5000,
) -> None:
    """Open the MLflow UI on the study store (MLFLOW_TRACKING_URI or the data dir's)."""
    import os

    from studies.study.home import Home
    from studies.study.recording import tracking_client, tracking_uri

    home = Home.from_environment()
    tracking_client(home)  # the store created whole before the UI opens it
    uri = tracking_uri(home)
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} for {uri}")
    mlflow = Path(sys.executable).with_name("mlflow")
    os.execv(str(mlflow), [str(mlflow), "ui", "--backend-store-uri", uri, "--host",
                           "127.0.0.1", "--port", str(port)])


def _settings() -> Settings:
    """The service's settings from the environment, or exit saying which one is wrong."""
    from pydantic import ValidationError

    from service.settings import Settings

    try:
        return Settings()
    except ValidationError as error:
        typer.echo(f"error: invalid setting: {error}", err=True)
        raise typer.Exit(code=2) from None


token_app = typer.Typer(no_args_is_help=True, help="API tokens of the service: created, "
                                                   "listed, revoked (stored hashed).")
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    owner: Annotated[str, typer.Option(help="whose token: the owner of the studies it submits")],
    admin: Annotated[bool, typer.Option("--admin", help="may see and cancel every owner's "
                                                        "studies")] = False,
) -> None:
    """Create a token and print it (once: only its hash is kept)."""
    from service import crud
    from service.database import open_database
    from studies.study.names import check_name

    try:
        check_name(owner)
    except ValueError as error:
        _fail(error)
        return
    with open_database(_settings().database_url)() as session:
        token, secret = crud.create_token(session, owner=owner, admin=admin)
    typer.echo(f"token {token.id} for {owner}{' (admin)' if admin else ''}; shown only now:",
               err=True)
    typer.echo(secret)


@token_app.command("list")
def token_list() -> None:
    """Every token: id, owner, admin, revoked, created (never the token)."""
    from service import crud
    from service.database import open_database

    with open_database(_settings().database_url)() as session:
        tokens = crud.list_tokens(session)
    for token in tokens:
        state = "revoked" if token.revoked else "active"
        typer.echo(f"{token.id:>4}  {token.owner:20} {'admin' if token.admin else '-':6}"
                   f"{state:8} {token.created_at:%Y-%m-%d %H:%M}")
    if not tokens:
        typer.echo("no tokens: create one with 'optistudy token create --owner NAME'")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="the token's id (see 'token "
                                                              "list')")]) -> None:
    """Revoke a token: it is refused from now on."""
    from service import crud
    from service.database import open_database

    with open_database(_settings().database_url)() as session:
        token = crud.revoke_token(session, token_id=token_id)
    if token is None:
        _fail(ValueError(f"no token has the id {token_id}"))
        return
    typer.echo(f"token {token_id} of {token.owner} revoked")


@app.command()
def serve() -> None:
    """Run the HTTP service (OPTISTUDY_HOST, default 127.0.0.1; OPTISTUDY_PORT, default 8000);
    OpenAPI docs at /docs. Refuses to start while no token exists."""
    import uvicorn

    from service import crud
    from service.database import open_database

    settings = _settings()
    with open_database(settings.database_url)() as session:
        tokens = crud.count_active_tokens(session)
    if not tokens and settings.admin_token is None:
        _fail(ValueError("no API token exists, so nobody could use the service: create one "
                         "with 'optistudy token create --owner NAME'"))
        return
    from service.app import create_app

    typer.echo(f"optistudy service on http://{settings.host}:{settings.port} (data dir "
               f"{settings.home}; drivers: {settings.ray_address or 'local processes'})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="info")


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


if __name__ == "__main__":
    app()
