"""What a user sees when a deploy fails: the run recorded on a real Prefect server, checked through
its REST API, and the flow-run page of its UI rendered by a headless Chromium.

The screenshot is kept in ``test-artifacts/failed-deploy-run.png`` (git-ignored; the README shows a
copy from ``docs/images/``). Debian's chromium and the playwright package come from
``make test-tools``; with ``MLDEPLOY_REQUIRE_ENGINE=1`` (``make test``) a missing one fails the test.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import prefect_api
from tests.integration.conftest import REPO, deploy, require_parts

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.ui]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOT = ARTIFACTS / "failed-deploy-run.png"
VIEWPORT = {"width": 1400, "height": 900}
UI_WAIT_SECONDS = 60
INIT_ERROR = "cannot load the tokenizer"
# Playwright adds --headless itself and takes the profile folder as user_data_dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",  # loopback only
]


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """Debian's chromium and playwright's Python driver; fail instead of skipping under `make test`."""
    problems = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        problems.append(f"playwright is not importable ({exc})")
    require_parts(problems, "make test-tools")


def _stage(task_run: dict[str, Any]) -> str:
    """Stage of a task run: its name starts with the task name ("deploy t-x to local")."""
    return str(task_run["name"]).split()[0]


def _break_init(service: Any) -> None:
    score = (service.root / "score.py").read_text()
    broken = score.replace("def init():\n", f"def init():\n    raise RuntimeError({INIT_ERROR!r})\n", 1)
    assert broken != score, "the example's score.py has no `def init():` to break"
    service.write("score.py", broken)


def test_failed_deploy_in_api_and_ui(browser_tools: None, make_service: Any, prefect_server: str) -> None:
    api = prefect_server
    iris = make_service("iris")
    first = deploy(iris)
    assert first.code == 0, first.stderr + first.stdout

    _break_init(iris)
    result = deploy(iris)
    assert result.code == 1, result.stderr + result.stdout
    summary = result.summary
    assert summary["failed_stage"] == "deploy"
    assert summary["diagnosis"]["code"] == "init_failed"
    flow_run_id = summary["flow_run_id"]

    # --- what the server recorded ---------------------------------------------------------
    run = prefect_api.flow_run(api, flow_run_id)
    assert prefect_api.state_type(run) == "FAILED", run["state"]

    task_runs = prefect_api.task_runs(api, flow_run_id)
    states = {_stage(t): (prefect_api.state_type(t), prefect_api.state_name(t)) for t in task_runs}
    failed = [t for t in task_runs if prefect_api.state_type(t) == "FAILED"]
    assert [_stage(t) for t in failed] == ["deploy"], states
    assert {"validate", "register", "plan", "build", "deploy"} <= states.keys(), states
    assert "smoke" not in states, f"smoke must not run after a failed deploy: {states}"
    for stage, (kind, name) in states.items():
        if stage != "deploy":
            assert kind == "COMPLETED" and name in ("Completed", "Cached"), (stage, kind, name)
    deploy_run = failed[0]
    assert deploy_run["run_count"] == 1, "a permanent error must not be retried"

    attached = {a["key"]: a for a in prefect_api.artifacts(api, task_run_id=deploy_run["id"])}
    diagnosis = attached.get(f"{iris.name}-deploy-diagnosis")
    log = attached.get(f"{iris.name}-deploy-log")
    assert diagnosis is not None and log is not None, sorted(attached)
    assert diagnosis["type"] == "markdown" and log["type"] == "markdown"
    assert "init_failed" in diagnosis["data"]
    assert f"RuntimeError: {INIT_ERROR}" in diagnosis["data"]
    assert f"RuntimeError: {INIT_ERROR}" in log["data"]
    assert all(a["flow_run_id"] == flow_run_id for a in attached.values())

    # --- what the user sees -----------------------------------------------------------------
    # the header names the run; the graph (a canvas) shows the red deploy task; the log pane starts with the
    # run's first lines (every INFO line reaches the server), so the task's name is not looked for there
    text = _screenshot_flow_run(api, flow_run_id, wait_for=[run["name"], "Failed"], path=SCREENSHOT)
    assert "deploy" in text and "Failed" in text
    assert SCREENSHOT.stat().st_size > 20_000, "the screenshot looks empty"


def _screenshot_flow_run(api: str, flow_run_id: str, wait_for: list[str], path: Path) -> str:
    """Open the flow run's page, wait until it shows ``wait_for`` and the run graph is drawn, save a
    full-page screenshot to ``path`` and return the page's text. On a timeout the page as it was is
    still saved (``<name>.timeout.png``) to show what went wrong."""
    from playwright.sync_api import Page, sync_playwright

    url = f"{prefect_api.ui_url(api)}/runs/flow-run/{flow_run_id}"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + UI_WAIT_SECONDS
    # The UI learns the API's address from /ui-settings, which the server derives from its own
    # settings (PREFECT_UI_API_URL, else port 4200), not from the port it was started on: point it
    # at this session's API so the page never reads another server's data.
    settings = httpx.get(f"{prefect_api.ui_url(api)}/ui-settings", timeout=10).json()
    settings["api_url"] = api

    def remaining_ms() -> float:
        return max(1.0, (deadline - time.monotonic()) * 1000)

    def wait_for_graph(page: Page) -> None:
        """The run graph is a canvas: wait until it has content and two looks in a row are equal."""
        canvas = page.locator(".run-graph canvas").first
        canvas.wait_for(state="visible", timeout=remaining_ms())
        previous = b""
        while time.monotonic() < deadline:
            page.wait_for_timeout(300)  # keeps serving the page's events, unlike time.sleep
            current = canvas.screenshot(timeout=remaining_ms())
            if current == previous:
                return
            previous = current
        raise TimeoutError(f"the run graph did not settle within {UI_WAIT_SECONDS} s")

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.route("**/ui-settings", lambda route: route.fulfill(json=settings))
            try:
                page.goto(url, timeout=remaining_ms())
                for text in wait_for:
                    page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=remaining_ms())
                wait_for_graph(page)
            except Exception:
                page.screenshot(path=path.with_suffix(".timeout.png"), full_page=True)
                raise
            page.screenshot(path=path, full_page=True)
            return str(page.evaluate("document.body.innerText"))
        finally:
            context.close()


@pytest.fixture(autouse=True)
def _no_stale_screenshot() -> Iterator[None]:
    """A screenshot from an earlier run must not pass for this one's."""
    for stale in (SCREENSHOT, SCREENSHOT.with_suffix(".timeout.png")):
        stale.unlink(missing_ok=True)
    yield
