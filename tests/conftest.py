"""Session-wide isolation: every test session gets its own Prefect and mldeploy homes.

The machine's base image setting (written by `make setup`) is carried over so the engine tests
build on the same base image as `make demo`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_session_root = Path(tempfile.mkdtemp(prefix="mldeploy-tests-"))


def pytest_configure(config: object) -> None:
    from mldeploy.settings import Settings

    machine = Settings.load()
    os.environ.setdefault("MLDEPLOY_BASE_IMAGE", machine.base_image)
    # The test Kubernetes is the machine's (scripts/cluster-up.sh keeps it under the machine's home)
    os.environ.setdefault("MLDEPLOY_MACHINE_HOME", str(machine.home))
    os.environ["MLDEPLOY_HOME"] = str(_session_root / "mldeploy-home")
    os.environ["PREFECT_HOME"] = str(_session_root / "prefect-home")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)  # never write into the user's server from tests
