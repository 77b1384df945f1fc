"""A regression injected below the suite, for the benchmark tests: a Ray worker setup hook
that wraps ``Rprop.__init__`` so that, while the file named by ``OPTISTUDY_TEST_REGRESSION``
exists, η⁺ is silently 1.05 whatever the configuration says. The suite, its digests and the
configs recorded with the run are untouched, as they would be by a real bug in the code."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

FLAG = "OPTISTUDY_TEST_REGRESSION"
REGRESSED_ETA_PLUS = 1.05


def install() -> None:
    """Ray's ``worker_process_setup_hook``: runs once in every worker as it starts."""
    from optimizers.rprop import Rprop

    original = Rprop.__init__

    @functools.wraps(original)  # the signature stays Rprop's: configs are validated by it
    def regressed(self: Rprop, *args: Any, **kwargs: Any) -> None:
        if Path(os.environ[FLAG]).exists():
            kwargs["eta_plus"] = REGRESSED_ETA_PLUS
        original(self, *args, **kwargs)

    Rprop.__init__ = regressed  # type: ignore[method-assign]
