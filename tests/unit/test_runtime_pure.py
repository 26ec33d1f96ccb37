"""In-process checks of the runtime's pure pieces: JSON depth, query parameters, headers, input-error
classification, key auth, request ids, settings. Fast: no server process."""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "mldeploy" / "runtime"


@pytest.fixture(scope="module")
def rt() -> Iterator[dict[str, ModuleType]]:
    """The runtime's modules, imported from mldeploy/runtime without leaving them in sys.modules."""
    sys.path.insert(0, str(RUNTIME))
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mldeploy_runtime")}
    bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ in the folder that is copied into images
    try:
        yield {
            name: importlib.import_module(f"mldeploy_runtime.{name}")
            for name in ("user_script", "auth", "settings", "app")
        }
    finally:
        sys.dont_write_bytecode = bytecode
        sys.path.remove(str(RUNTIME))
        for k in [k for k in sys.modules if k.startswith("mldeploy_runtime")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_json_depth(rt: dict[str, ModuleType]) -> None:
    us = rt["user_script"]
    assert not us.deeper_than({"a": {"b": [1, {"c": []}]}}, 5)
    assert us.deeper_than({"a": {"b": [1, {"c": []}]}}, 4)
    assert not us.deeper_than([], 1) and us.deeper_than([[]], 1)
    assert us.deeper_than([{}, [[]]], 2) and not us.deeper_than([{}, [[]]], 3)
    assert not us.deeper_than([1, "x", None, 2.0], 1)

    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    assert not us.nested_deeper_than(nested(64), 64) and us.nested_deeper_than(nested(65), 64)
    assert us.nested_deeper_than(nested(200_000), 64)  # the parser's RecursionError counts as too deep
    assert not us.nested_deeper_than(b'{"a": "' + b"[" * 500 + b'"}', 64)  # brackets in strings
    assert not us.nested_deeper_than(b"[" * 500, 64)  # not JSON: run() gets it as it is
    assert not us.nested_deeper_than(b"\xff[[[", 1)
    assert not us.nested_deeper_than(nested(100), 0)  # 0 = no limit
    matrix = json.dumps({"data": [[1.5, 2, 3, 4]] * 20_000}).encode()
    started = time.perf_counter()
    assert not us.nested_deeper_than(matrix, 64)
    assert time.perf_counter() - started < 1


def test_query_parameters_as_the_classic_server_parsed_them(rt: dict[str, ModuleType]) -> None:
    qp = rt["user_script"].query_parameters
    assert qp("a=1&b=[1,2]&c=a&d=null") == {"a": 1, "b": [1, 2], "c": "a", "d": None}
    assert qp("foo=bar1&foo=bar2&x=y") == {"foo": ["bar1", "bar2"], "x": "y"}
    assert qp("") == {}


def test_request_headers_are_title_case(rt: dict[str, ModuleType]) -> None:
    headers = rt["user_script"]._title_headers([(b"x-custom", b"1"), (b"content-type", b"a/b"), (b"x-custom", b"2")])
    assert headers == {"X-Custom": "1, 2", "Content-Type": "a/b"}


def test_schema_input_error_only_for_inference_schema_conversions(rt: dict[str, ModuleType]) -> None:
    np = pytest.importorskip("numpy")
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.schema_decorators import input_schema

    classify = rt["user_script"].schema_input_error

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
    def run(data):  # type: ignore[no-untyped-def]
        if data.sum() < 0:
            raise ValueError("negative input")  # the user's own error: a 500, not a 400
        return data

    def error(value: object) -> BaseException:
        with pytest.raises(Exception) as info:
            run(data=value)
        return info.value

    assert classify(error([["a", "b"]]), run) == ("data", "NumpyParameterType")
    assert classify(error("text"), run) == ("data", "NumpyParameterType")
    assert classify(error([[-1, -2]]), run) is None
    assert classify(ValueError("elsewhere"), run) is None


def test_key_auth(rt: dict[str, ModuleType], tmp_path: Path) -> None:
    settings, auth = rt["settings"], rt["auth"]
    lines: list[str] = []
    keys = auth.KeyAuth(
        (
            settings.AuthSource("MLDEPLOY_AUTH_PRIMARY_KEY", value="k" * 16),
            settings.AuthSource("MLDEPLOY_AUTH_SECONDARY_KEY", value="s" * 20),
        ),
        lines.append,
    )
    assert keys.check(b"Bearer " + b"k" * 16) and keys.check(b"bearer " + b"s" * 20)
    assert not keys.check(None) and not keys.check(b"") and not keys.check(b"k" * 16)
    assert not keys.check(b"Bearer " + b"k" * 15) and not keys.check(b"Basic " + b"k" * 16)
    assert "k" * 16 not in repr(keys.sources)

    key_file = tmp_path / "key"
    key_file.write_text("first-key-0123456789\n")
    from_file = auth.KeyAuth((settings.AuthSource("MLDEPLOY_AUTH_PRIMARY_KEY", file=str(key_file)),), lines.append)
    assert from_file.check(b"Bearer first-key-0123456789")
    key_file.write_text("second-key-0123456789\n")
    from_file._next_check = 0.0  # as if a second passed
    assert from_file.check(b"Bearer second-key-0123456789")
    assert not from_file.check(b"Bearer first-key-0123456789")
    key_file.write_text("short")
    from_file._next_check = 0.0
    assert not from_file.check(b"Bearer short") and not from_file.check(b"Bearer second-key-0123456789")
    assert any("shorter than 16" in line for line in lines)
    assert not any("second-key" in line or "first-key" in line for line in lines)


def test_settings_validation(rt: dict[str, ModuleType], tmp_path: Path) -> None:
    settings = rt["settings"]
    s = settings.Settings.from_env({"SERVER_PORT": "6000", "AML_CORS_ORIGINS": "a, b,", "AZUREML_LOG_LEVEL": "WARN"})
    assert (s.port, s.cors_origins, s.log_level, s.auth) == (6000, ("a", "b"), "warning", ())
    assert s.max_json_depth == 64 and s.max_body_bytes == 1024 * 1024 and s.scoring_timeout_ms == 3600_000
    for env, message in (
        ({"WORKER_COUNT": "0"}, "at least 1"),
        ({"MLDEPLOY_PORT": "70000"}, "at most 65535"),
        ({"MLDEPLOY_AUTH_PRIMARY_KEY": "x" * 15}, "shorter than 16"),
        ({"MLDEPLOY_AUTH_PRIMARY_KEY": "x" * 16, "MLDEPLOY_AUTH_PRIMARY_KEY_FILE": "/k"}, "not both"),
    ):
        with pytest.raises(settings.SettingsError, match=message):
            settings.Settings.from_env(env)


def test_request_ids_are_unique_and_uuid_shaped(rt: dict[str, ModuleType]) -> None:
    ids = rt["app"].RequestIds()
    other = rt["app"].RequestIds()
    seen = {ids() for _ in range(1000)} | {other() for _ in range(1000)}
    assert len(seen) == 2000
    sample = next(iter(seen)).decode()
    assert [len(part) for part in sample.split("-")] == [8, 4, 4, 4, 12] and sample[14] == "4"


def test_the_debugger_wait_is_bounded(rt: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    server = importlib.import_module("mldeploy_runtime.server")
    never = ModuleType("debugpy")
    never.is_client_connected = lambda: False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "debugpy", never)
    started = time.monotonic()
    server._wait_for_debugger(1)
    assert 0.9 <= time.monotonic() - started < 5, "waits its bound, then continues without a debugger"
    assert rt["settings"].Settings.from_env({}).debug_wait_seconds == 60


def test_the_runtime_and_the_renderers_agree_with_the_contract(rt: dict[str, ModuleType]) -> None:
    import mldeploy.contract as contract
    from mldeploy.dockerfile import DockerfileInputs, render_dockerfile

    shipped = importlib.import_module("mldeploy_runtime.contract")
    assert {k: v for k, v in vars(shipped).items() if k.isupper()} == {
        k: getattr(contract, k) for k in contract.__all__
    }, "the pipeline reads the very file the image ships"
    settings = rt["settings"].Settings.from_env({})
    assert settings.port == contract.CONTAINER_PORT and settings.app_root == contract.APP_ROOT
    assert rt["settings"].AUTH_KEY_VARS == contract.AUTH_KEY_VARS
    routes = rt["app"].ROUTES
    for path in (
        contract.LIVENESS_PATH,
        contract.READINESS_PATH,
        contract.INFO_PATH,
        contract.SCORE_PATH,
        contract.SWAGGER_PATH,
    ):
        assert path in routes
    assert set(rt["app"].OPEN_PATHS) == {contract.LIVENESS_PATH, contract.READINESS_PATH}
    dockerfile = render_dockerfile(DockerfileInputs("python:3.11-slim", (("m", 2),), "score.py", False))
    assert f"EXPOSE {contract.CONTAINER_PORT}" in dockerfile
    assert f"{contract.ENV_MODEL_DIR}={contract.MODELS_DIR}/m/2" in dockerfile  # relative to the WORKDIR
    assert f"COPY model/m/2/ {contract.MODELS_ROOT}/m/2/" in dockerfile
    assert f"WORKDIR {contract.APP_ROOT}" in dockerfile and f"USER {contract.SERVICE_UID}" in dockerfile
    assert f"{contract.CONTAINER_PORT}{contract.READINESS_PATH}" in dockerfile  # the HEALTHCHECK
    assert f"PYTHONPATH={contract.RUNTIME_ROOT}" in dockerfile
