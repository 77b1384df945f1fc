"""``/benchmarks/runs``: the benchmark runs the schedules made, with their verdicts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from service import crud
from service.api.deps import CurrentOwner, SessionDep
from service.schemas import (
    BenchmarkRunPublic,
    BenchmarkRunsPublic,
    BenchmarkRunsQuery,
    Problems,
)

router = APIRouter(prefix="/benchmarks", tags=["benchmarks"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": Problems, "description": "no valid bearer token"},
}


@router.get("/runs", responses=_REFUSED)
def list_runs(owner: CurrentOwner, session: SessionDep,
              query: Annotated[BenchmarkRunsQuery, Query()]) -> BenchmarkRunsPublic:
    """The caller's scheduled benchmark runs (an admin's: everyone's), newest slot first, a
    page at a time; ``schedule_id``: of one schedule. Verdict: ok (exit 0), regressed (exit 1,
    see the summary), error (any other exit, or interrupted)."""
    runs, count = crud.list_benchmark_runs(session, owner=None if owner.admin else owner.name,
                                           schedule_id=query.schedule_id,
                                           offset=query.offset, limit=query.limit)
    return BenchmarkRunsPublic(data=[BenchmarkRunPublic.model_validate(r) for r in runs],
                               count=count)
