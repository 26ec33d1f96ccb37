"""Loading the user's scoring script and deciding how ``run()`` is called.

Follows azureml-inference-server-http 1.x (server/user_script.py, server/input_parsers.py):

* the script is loaded from its file as module ``entry_module``; the app root (and
  ``AZUREML_SOURCE_DIRECTORY``)
  are appended to ``sys.path``; a ``driver_module`` attribute holding the real script is honoured for
  ``run()``;
* ``run`` may declare a ``request_headers`` parameter, which then receives the request headers as a dict;
* undecorated ``run(data)``: ``data`` is the request body decoded as UTF-8 (400 if it is not UTF-8);
* ``run`` decorated with inference-schema ``@input_schema`` (``schema_util.is_schema_decorated``): the body
  must be
  a JSON object; each parameter of ``run`` is taken from the key of the same name (its default if absent, 400
  if
  it has none) and passed by keyword, so inference-schema converts it to the declared type;
* ``@rawhttp``: ``run(request)`` gets an ``AMLRequest``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .rawhttp import RAWHTTP_ATTR, AMLRequest

MODULE_NAME = "entry_module"


class ScriptError(Exception):
    """The script cannot be used (missing file, missing init/run, unusable run signature)."""


class ScriptImportError(Exception):
    """Executing the script's module body raised; the original exception is ``__cause__``."""


class ClientError(Exception):
    """The request cannot be turned into run() arguments; answered with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _is_schema_decorated(func: Any) -> bool:
    if "inference_schema" not in sys.modules:  # the script never imported it: cannot be decorated
        return False
    try:
        from inference_schema.schema_util import is_schema_decorated
    except ImportError:
        return False
    try:
        return bool(is_schema_decorated(func))
    except Exception:
        return False


def _is_rawhttp(func: Any) -> bool:
    if getattr(func, RAWHTTP_ATTR, False):
        return True
    # scripts that imported the classic module name directly
    for name in ("azureml.contrib.services.aml_request", "azureml_inference_server_http.api.aml_request"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "_rawHttpRequested", False):
            return True
    return False


class UserScript:
    """The loaded script and the prepared ``parse`` (request -> run arguments) function."""

    module: ModuleType
    init: Callable[[], Any]
    run: Callable[..., Any]
    mode: str  # "string" | "schema" | "raw"
    wants_headers: bool
    param_names: list[str]

    def __init__(self, path: str, app_root: str, source_dir: str | None = None) -> None:
        self.path = path
        self.app_root = app_root
        self.source_dir = source_dir

    def load(self) -> None:
        if not os.path.isfile(self.path):
            raise ScriptError(f"entry script {self.path} does not exist")
        for extra in (self.app_root, self.source_dir, os.path.dirname(self.path)):
            if extra and extra not in sys.path:
                sys.path.append(extra)
        spec = importlib.util.spec_from_file_location(MODULE_NAME, self.path)
        if spec is None or spec.loader is None:
            raise ScriptError(f"cannot load {self.path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module  # dataclasses, pickle and typing need the module registered
        try:
            spec.loader.exec_module(module)
        except BaseException as ex:
            sys.modules.pop(MODULE_NAME, None)
            raise ScriptImportError(f"importing {self.path} raised {type(ex).__name__}") from ex
        self.module = module
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise ScriptError(f"{self.path} does not define a {name}() function")
        self.init = module.init
        run = module.run
        driver = getattr(module, "driver_module", None)
        if isinstance(driver, ModuleType) and callable(getattr(driver, "run", None)):
            run = driver.run
        self.run = run
        self._analyze()

    def _analyze(self) -> None:
        try:
            params = list(inspect.signature(self.run).parameters.values())
        except (TypeError, ValueError):
            params = []
        self.wants_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            raise ScriptError("run() needs to accept an argument for the input data")
        first = params[0]
        self._positional = first.kind in (
            first.POSITIONAL_ONLY,
            first.POSITIONAL_OR_KEYWORD,
            first.VAR_POSITIONAL,
        )
        self._first_name = first.name
        rawhttp = _is_rawhttp(self.run)
        decorated = _is_schema_decorated(self.run)
        if rawhttp and decorated:
            raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema")
        if rawhttp:
            self.mode = "raw"
        elif decorated:
            self.mode = "schema"
            self._schema_params = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        else:
            self.mode = "string"
        self.param_names = [p.name for p in params]

    # -- per request -----------------------------------------------------------------------------------------

    def parse(
        self, body: bytes, content_type: str | None, scope: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The (args, kwargs) for run(); raises ClientError for a request that cannot be used."""
        kwargs: dict[str, Any]
        if self.mode == "string":
            try:
                value: Any = body.decode("utf-8")
            except UnicodeDecodeError as ex:
                raise ClientError(400, f"Input cannot be decoded as UTF-8: {ex}") from None
            args: tuple[Any, ...] = ()
            kwargs = {}
            if self._positional:
                args = (value,)
            else:
                kwargs[self._first_name] = value
        elif self.mode == "schema":
            args, kwargs = (), self._schema_kwargs(body, content_type)
        else:
            req = AMLRequest(
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=scope.get("headers"),
                body=body,
                scheme=scope.get("scheme", "http"),
            )
            if self._positional:
                args, kwargs = (req,), {}
            else:
                args, kwargs = (), {self._first_name: req}
        if self.wants_headers:
            kwargs["request_headers"] = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        return args, kwargs

    def _schema_kwargs(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        if content_type is not None:
            mt = content_type.split(";", 1)[0].strip().lower()
            if not (mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))):
                raise ClientError(415, "Expects Content-Type to be application/json")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as ex:
            if body:
                raise ClientError(400, f"POST body could not be decoded as JSON: {ex}") from None
            raise ClientError(400, "POST body is empty. Expecting a JSON dictionary.") from None
        if not isinstance(data, dict):
            raise ClientError(400, "POST body should be a JSON dictionary.")
        kwargs: dict[str, Any] = {}
        for p in self._schema_params:
            value = data.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise ClientError(400, f"A value is not provided for the {p.name!r} parameter.")
            kwargs[p.name] = value
        return kwargs
