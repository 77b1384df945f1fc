"""Settings for every service test."""

from __future__ import annotations

import httpx

# httpx waits 5 s by default; on a loaded 2-core machine a request can queue that long
# behind the training of a study, which is not what these tests are about. Every call
# that gives no timeout of its own waits up to a minute.
for _phase in ("connect", "read", "write", "pool"):
    setattr(httpx._config.DEFAULT_TIMEOUT_CONFIG, _phase, 60.0)
