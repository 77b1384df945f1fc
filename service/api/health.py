"""``/health``: whether the service answers (the only route without a token)."""

from __future__ import annotations

from fastapi import APIRouter

from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> Health:
    return Health(status="ok")
