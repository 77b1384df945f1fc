"""The batched writes into MLflow's SQL tables (``studies.study.mlflow_sql``) give the same
runs as MLflow's own API: a run opened and ended both ways reads back alike through
``get_run``, ``get_metric_history`` and ``search_runs``, on a real SQLite store and a real
PostgreSQL one. The curves logged per trial summarise the seeds as NumPy would."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from studies.study import mlflow_writes
from studies.study.mlflow_sql import Ending, NewRun, create_runs, end_runs
from studies.study.mlflow_values import CURVE_KEY, Curves, bends, curves, row_quantiles
from tests.backends import BACKENDS, stores

TAGS = {"optistudy.role": "trial", "optuna.trial_number": "3", "mlflow.parentRunId": "abc"}
OPENING = [Param("hyperparameters.delta0", "0.1"), Param("hyperparameters.eta_plus", "1.2")]
ENDING = [Param("config.optimizer.variant", "iRprop+"), Param("config.seeds", "100")]


def _metrics() -> list[Metric]:
    """Curves (out of step order, one NaN), and a summary at step 0."""
    return [Metric("loss_median", 0.5, 1000, 10), Metric("loss_median", 0.9, 1000, 0),
            Metric("loss_median", 0.2, 1001, 20), Metric("loss_p90", float("nan"), 1000, 20),
            Metric("loss_p90", 1.5, 1000, 10), Metric("success_rate", 0.75, 1002, 0),
            Metric("optimizer/step_p50", 1e-3, 1000, 20), Metric("loss_p10", float("inf"), 1000, 5),
            Metric("loss_p10", float("-inf"), 1000, 15)]


def _curves() -> Curves:
    """Curves as a trial logs them: NaN where a curve has no point."""
    return Curves(np.array([0, 5, 10, 20]), {
        CURVE_KEY: np.array([0.0, 0.25, 0.5, 0.5]),
        "optimizer/step_p90": np.array([0.1, np.nan, 0.4, 0.3])}, 1003)


@pytest.fixture(scope="module", params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[MlflowClient]:
    home: Path = tmp_path_factory.mktemp(request.param)
    with stores(request.param, home) as backend:
        yield MlflowClient(backend.tracking_uri)


def _experiment(client: MlflowClient, name: str) -> str:
    return client.create_experiment(name)


def _by_api(client: MlflowClient, experiment: str, status: str) -> str:
    run_id: str = client.create_run(experiment, run_name="xor/arm/trial-3", tags=TAGS).info.run_id
    client.log_batch(run_id, params=OPENING)
    client.log_batch(run_id, metrics=[*_metrics(), *_curves().metrics()], params=ENDING)
    client.set_terminated(run_id, status)
    return run_id


def _same(value: float, reference: float) -> bool:
    return value == reference or (math.isnan(value) and math.isnan(reference))


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, int, float]]:
    return sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))


def test_a_run_opened_and_ended_in_bulk_reads_back_as_one_made_by_mlflows_api(
        client: MlflowClient) -> None:
    experiment = _experiment(client, "bulk-equals-api")
    reference = _by_api(client, experiment, "FINISHED")
    store = client._tracking_client.store
    [(bulk, artifact_uri)] = create_runs(store, experiment,
                                         [NewRun("xor/arm/trial-3", TAGS, OPENING)])
    opened = client.get_run(bulk)
    assert opened.info.artifact_uri == artifact_uri
    assert (opened.info.status, opened.info.end_time) == ("RUNNING", None)
    assert opened.data.params == {p.key: p.value for p in OPENING}
    end_runs(store, [Ending(bulk, "FINISHED", ENDING, _metrics(), curves=_curves())])

    ours, theirs = client.get_run(bulk), client.get_run(reference)
    assert len(client.get_metric_history(bulk, "optimizer/step_p90")) == 3
    for field in ("status", "lifecycle_stage", "user_id", "run_name", "experiment_id"):
        assert getattr(ours.info, field) == getattr(theirs.info, field), field
    assert ours.info.artifact_uri == theirs.info.artifact_uri.replace(reference, bulk)
    assert ours.info.start_time <= ours.info.end_time
    assert ours.data.tags == theirs.data.tags
    assert ours.data.params == theirs.data.params
    assert ours.data.metrics.keys() == theirs.data.metrics.keys()
    for key, value in theirs.data.metrics.items():  # the latest value per key
        assert _same(ours.data.metrics[key], value), key
    for key in theirs.data.metrics:
        ours_history, theirs_history = _history(client, bulk, key), _history(client, reference, key)
        assert len(ours_history) == len(theirs_history), key
        for mine, reference_point in zip(ours_history, theirs_history, strict=True):
            assert mine[:2] == reference_point[:2]
            assert _same(mine[2], reference_point[2]), key
    found = client.search_runs([experiment], "metrics.success_rate > 0.7 and "
                               "params.`config.optimizer.variant` = 'iRprop+' and "
                               "tags.`optuna.trial_number` = '3'")
    assert {run.info.run_id for run in found} == {bulk, reference}


def test_ending_keeps_logged_params_newer_latest_values_and_replaces_tags(
        client: MlflowClient) -> None:
    experiment = _experiment(client, "bulk-ending-rules")
    store = client._tracking_client.store
    first, second = (run.run_id for run in create_runs(
        store, experiment, [NewRun("a", {"note": "old"}, OPENING), NewRun("b", {}, [])]))
    client.log_batch(first, metrics=[Metric("loss_median", 0.1, 2000, 50)])
    changed = [Param("hyperparameters.delta0", "0.7"), *ENDING]
    end_runs(store, [Ending(first, "KILLED", changed, _metrics(), [RunTag("note", "new")]),
                     Ending(second, "FAILED", tags=[RunTag("optistudy.error", "boom")])])
    run = client.get_run(first)
    assert run.info.status == "KILLED"
    assert run.data.params["hyperparameters.delta0"] == "0.1"  # MLflow keeps a logged value
    assert run.data.params["config.seeds"] == "100"
    assert run.data.metrics["loss_median"] == 0.1  # step 50 stays the latest
    assert run.data.metrics["success_rate"] == 0.75
    assert run.data.tags["note"] == "new"
    assert len(client.get_metric_history(first, "loss_median")) == 4
    failed = client.get_run(second)
    assert (failed.info.status, failed.data.tags["optistudy.error"]) == ("FAILED", "boom")
    assert failed.data.tags["mlflow.runName"] == "b"


def test_a_deleted_run_is_left_alone_and_a_deleted_experiment_refuses_new_runs(
        client: MlflowClient) -> None:
    experiment = _experiment(client, "bulk-deleted")
    store = client._tracking_client.store
    kept, deleted = (run.run_id for run in create_runs(
        store, experiment, [NewRun("kept", {}), NewRun("gone", {})]))
    client.delete_run(deleted)
    end_runs(store, [Ending(kept, "FINISHED", metrics=_metrics()),
                     Ending(deleted, "FINISHED", metrics=_metrics())])
    assert client.get_run(kept).info.status == "FINISHED"
    assert client.get_run(deleted).info.status == "RUNNING"
    assert client.get_metric_history(deleted, "loss_median") == []
    client.delete_experiment(experiment)
    with pytest.raises(MlflowException, match=f"experiment {experiment} is not an active"):
        create_runs(store, experiment, [NewRun("late", {})])


def test_row_quantiles_match_numpys_nanquantile_row_by_row() -> None:
    generator = np.random.default_rng(7)
    rows = generator.lognormal(size=(300, 37))
    rows[generator.random(rows.shape) < 0.3] = np.nan
    rows[5] = np.nan
    rows[5, 11] = 2.5  # one value left: every quantile is it
    rows[9, :] = 1.0  # ties
    quantiles = (0.5, 0.1, 0.9, 0.0, 1.0)
    expected = np.stack([np.nanquantile(row, quantiles) for row in rows])
    np.testing.assert_allclose(row_quantiles(rows, quantiles), expected, rtol=1e-12)


def test_curves_give_the_median_and_spread_over_seeds_and_the_fraction_converged() -> None:
    epochs = np.arange(0, 10)
    loss = np.array([[9.0 - e, 5.0 - e / 2, np.inf, 4.0] for e in epochs])
    metrics = curves({"epochs": epochs, "loss": loss}, [3, 8, 10, 10],
                     [True, True, False, False], {})
    at = {(key, step): value for key, values in metrics.series.items()
          for step, value in zip(metrics.steps.tolist(), values.tolist(), strict=True)}
    assert at[("loss_median", 4)] == pytest.approx(np.median([5.0, 3.0, 4.0]))
    assert at[("loss_p10", 4)] == pytest.approx(np.quantile([5.0, 3.0, 4.0], 0.1))
    assert at[("loss_p90", 0)] == pytest.approx(np.quantile([9.0, 5.0, 4.0], 0.9))
    assert [at[(CURVE_KEY, e)] for e in (2, 3, 8, 9)] == [0.0, 0.25, 0.5, 0.5]


def test_curves_leave_out_only_points_on_flat_stretches_the_line_through_the_rest_is_the_same(
        ) -> None:
    steps = np.arange(0, 200, 10)
    fraction = np.array([0, 0, 0, .1, .1, .3, .3, .3, .3, .5, .5, .5, .5, .5, .5, .7, .7, .7,
                         .7, .7])
    loss = np.linspace(2.0, 0.1, len(steps))
    loss[12:] = loss[12]  # the members stopped: flat from here
    curves_logged = Curves(steps, {"frac_converged": fraction, "loss_median": loss}, 0)
    for key, values, kept in curves_logged.logged():
        full = curves_logged.series[key]
        assert len(kept) < len(steps)
        assert kept[0] == steps[0] and kept[-1] == steps[-1]
        np.testing.assert_array_equal(np.interp(steps, kept, values), full)  # the same line
    assert bends(np.array([1.0, 1.0])).all() and bends(np.array([3.0])).all()


def test_ending_again_with_older_or_repeated_values_keeps_the_latest_and_fails_nothing(
        client: MlflowClient) -> None:
    experiment = _experiment(client, "bulk-ending-again")
    store = client._tracking_client.store
    [(run_id, _)] = create_runs(store, experiment, [NewRun("again", {})])
    end_runs(store, [Ending(run_id, "FINISHED", metrics=[Metric("loss_median", 0.2, 2000, 50)])])
    older = [Metric("loss_median", 0.9, 1000, 10), Metric("loss_median", 0.9, 1000, 10)]
    end_runs(store, [Ending(run_id, "FINISHED", metrics=older)])  # a repeat, nothing newer
    assert client.get_run(run_id).data.metrics["loss_median"] == 0.2
    assert len(client.get_metric_history(run_id, "loss_median")) == 2


def test_one_run_that_cannot_be_ended_does_not_keep_the_others_running(
        client: MlflowClient) -> None:
    experiment = _experiment(client, "bulk-one-bad")
    store = client._tracking_client.store
    good, bad = (run.run_id for run in create_runs(
        store, experiment, [NewRun("good", {}), NewRun("bad", {})]))
    broken = Metric("loss_median", "not a number", 1000, 0)  # type: ignore[arg-type]
    with pytest.raises(MlflowException, match=f"could not end MLflow runs \\['{bad}'\\]"):
        mlflow_writes.end_runs(client, [Ending(bad, "FINISHED", metrics=[broken]),
                                        Ending(good, "FINISHED", metrics=_metrics())])
    assert client.get_run(good).info.status == "FINISHED"
    assert client.get_run(bad).info.status == "RUNNING"


def test_a_store_that_is_not_a_database_gets_mlflows_own_calls_in_its_batch_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path an MLflow server over HTTP takes, on MLflow's file store (no SQL tables):
    more params and metrics than one ``log_batch`` takes, a logged param kept."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(str(tmp_path / "mlruns"))
    experiment = client.create_experiment("api-path")
    opening = [Param(f"hyperparameters.p{i}", str(i)) for i in range(150)]
    [(run_id, artifact_uri)] = mlflow_writes.create_runs(
        client, experiment, [NewRun("api", TAGS, opening)])
    history = [Metric("loss_median", 1.0 / (step + 1), 1000, step) for step in range(1500)]
    mlflow_writes.end_runs(client, [Ending(
        run_id, "FINISHED", [Param("hyperparameters.p1", "9"), *ENDING], history,
        [RunTag("note", "done")], curves=_curves())])
    run = client.get_run(run_id)
    assert (run.info.status, run.info.artifact_uri) == ("FINISHED", artifact_uri)
    assert len(run.data.params) == 152 and run.data.params["hyperparameters.p1"] == "1"
    assert len(client.get_metric_history(run_id, "loss_median")) == 1500
    assert len(client.get_metric_history(run_id, "optimizer/step_p90")) == 3
    assert run.data.tags["note"] == "done" and run.data.tags["mlflow.runName"] == "api"
