"""A request whose declared body is over the limit is refused (413) before anything reads
it; a body without a declared length is counted as it is read (``body.read_capped``)."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(
                    {"detail": f"the request body is larger than {self.max_bytes} bytes"},
                    status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
