"""Loading the user's scoring script and deciding how ``run()`` is called.

Follows azureml-inference-server-http 1.x (server/user_script.py, server/input_parsers.py):

* the script is loaded from its file as module ``entry_module``; the app root (and ``AZUREML_SOURCE_DIRECTORY``)
  are appended to ``sys.path``; a ``driver_module`` attribute holding the real script is honoured for ``run()``;
* ``run`` may declare a ``request_headers`` parameter, which then receives the request headers as a dict
  (``dict(flask.request.headers)`` in the classic server: ``Title-Case`` names);
* undecorated ``run(data)``: ``data`` is the request body decoded as UTF-8 (400 if it is not UTF-8);
* ``run`` decorated with inference-schema ``@input_schema`` (``schema_util.is_schema_decorated``): the request
  must say ``Content-Type: application/json`` (415 otherwise) and the body must be a JSON object; each parameter
  of ``run`` is taken from the key of the same name (its default if absent, 400 if it has none) and passed by
  keyword, so inference-schema converts it to the declared type;
* ``@rawhttp``: ``run(request)`` gets an ``AMLRequest``;
* ``GET /score?a=1&b=[1,2]``: the query parameters, each parsed as JSON when it is JSON (a repeated parameter
  becomes a list), stand in for the body: ``json.dumps`` of them for an undecorated ``run()``, the parameters
  for a decorated one.

Beyond the classic server: a body nested deeper than ``MLDEPLOY_MAX_JSON_DEPTH`` is refused with a 400 before
``run()`` is called, and a value that inference-schema cannot convert to the declared type is a 400 naming the
parameter (the classic server answered 500, because the conversion ran inside the decorated ``run()``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable
from itertools import chain
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import parse_qsl

from .rawhttp import RAWHTTP_ATTR

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


def deeper_than(value: Any, limit: int) -> bool:
    """True when the parsed JSON ``value`` nests lists/objects more than ``limit`` levels deep.

    Walks level by level; the type scan of a whole level runs at C speed (``set(map(type, chain(...)))``), so
    a large numeric matrix costs about a tenth of parsing it.
    """
    level: list[Any] = [value]
    dicts_in_level = type(value) is dict
    depth = 1
    while level:
        if depth > limit:
            return True
        if not dicts_in_level:
            items: list[Any] = level[0] if len(level) == 1 else list(chain.from_iterable(level))
        else:
            items = list(chain.from_iterable(n.values() if type(n) is dict else n for n in level))
        kinds = set(map(type, items))
        has_list, dicts_in_level = list in kinds, dict in kinds
        if not has_list and not dicts_in_level:
            return False
        if len(kinds) == has_list + dicts_in_level:  # nothing but containers: the whole level goes down
            level = items
        else:
            level = [c for c in items if type(c) is list or type(c) is dict]
        depth += 1
    return False


def may_be_deeper_than(body: bytes, limit: int) -> bool:
    """Cheap pre-check: a body with at most ``limit`` opening brackets cannot nest deeper than ``limit``."""
    return limit > 0 and body.count(b"[") + body.count(b"{") > limit


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """True when ``body`` is JSON nested more than ``limit`` levels deep (a body that is no JSON: False).

    Ordinary bodies cost two ``bytes.count`` calls; others are parsed (at C speed; the parser itself gives up on
    pathological nesting with RecursionError) and walked, which costs about what parsing them costs.
    """
    if not isinstance(body, bytes) or not may_be_deeper_than(body, limit):
        return False
    try:
        value = json.loads(body)
    except RecursionError:
        return True
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, (list, dict)) and deeper_than(value, limit)


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def query_parameters(query: str, max_depth: int = 0) -> dict[str, Any]:
    """The classic GET /score input: every query parameter parsed as JSON if it is JSON; repeated ones as lists.

    The same depth limit as a POST body applies to each value (``ClientError`` 400 when exceeded).
    """
    values: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        if max_depth and nested_deeper_than(v.encode("utf-8", "surrogatepass"), max_depth):
            raise ClientError(
                400, f"Query parameter {k!r} is nested deeper than {max_depth} levels (MLDEPLOY_MAX_JSON_DEPTH)."
            )
        values.setdefault(k, []).append(v)
    return {k: _maybe_json(v[0]) if len(v) == 1 else [_maybe_json(x) for x in v] for k, v in values.items()}


def _title_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers as the classic server passed them to ``request_headers``: ``dict(flask.request.headers)``."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").title()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _code_of(func: Any) -> Any:
    inner = func
    for _ in range(50):  # follow functools/wrapt __wrapped__ chains to the user's own function
        nxt = getattr(inner, "__wrapped__", None)
        if nxt is None:
            break
        inner = nxt
    return getattr(inner, "__code__", None)


def schema_input_error(ex: BaseException, run: Any) -> tuple[str, str] | None:
    """(parameter path, declared type) when ``ex`` is inference-schema failing to convert an input of ``run()``.

    That conversion happens inside the decorated ``run()`` before the user's function is entered: the traceback
    runs through ``inference_schema.schema_decorators._deserialize_input_argument`` and never through the user's
    code. Anything else (including errors raised by the user's own code) is None.
    """
    user_code = _code_of(run)
    path: list[str] = []
    declared = ""
    tb: TracebackType | None = ex.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if user_code is not None and frame.f_code is user_code:
            return None
        if (
            frame.f_code.co_name == "_deserialize_input_argument"
            and frame.f_globals.get("__name__") == "inference_schema.schema_decorators"
        ):
            name = frame.f_locals.get("param_name")
            if isinstance(name, str) and (not path or path[-1] != name):
                path.append(name)
            declared = type(frame.f_locals.get("param_type")).__name__
        tb = tb.tb_next
    if not path:
        return None
    return ".".join(path), declared


class UserScript:
    """The loaded script and the prepared ``parse`` (request -> run arguments) function."""

    module: ModuleType
    init: Callable[[], Any]
    run: Callable[..., Any]
    mode: str  # "string" | "schema" | "raw"
    wants_headers: bool
    param_names: list[str]

    def __init__(self, path: str, app_root: str, source_dir: str | None = None, max_json_depth: int = 64) -> None:
        self.path = path
        self.app_root = app_root
        self.source_dir = source_dir
        self.max_json_depth = max_json_depth

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
        # run(raw_data) with nothing else to pass: the app's fast path calls run(body.decode()) itself
        self.takes_body_positionally = self.mode == "string" and self._positional and not self.wants_headers

    # -- per request -----------------------------------------------------------------------------------------

    def parse(
        self, body: bytes, content_type: str | None, scope: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The (args, kwargs) for run(); raises ClientError for a request that cannot be used."""
        kwargs: dict[str, Any]
        get = scope["method"] == "GET"
        if self.mode == "string":
            if get:
                query = query_parameters(scope.get("query_string", b"").decode("latin-1"), self.max_json_depth)
                value: Any = json.dumps(query)
            else:
                try:
                    value = body.decode("utf-8")
                except UnicodeDecodeError as ex:
                    raise ClientError(400, f"Input cannot be decoded as UTF-8: {ex}") from None
            args: tuple[Any, ...] = ()
            kwargs = {}
            if self._positional:
                args = (value,)
            else:
                kwargs[self._first_name] = value
        elif self.mode == "schema":
            if get:
                data = query_parameters(scope.get("query_string", b"").decode("latin-1"), self.max_json_depth)
                args, kwargs = (), self._extract(data)
            else:
                args, kwargs = (), self._schema_kwargs(body, content_type)
        else:
            from .werkzeug_bridge import build_request

            req = build_request(scope, body)
            if self._positional:
                args, kwargs = (req,), {}
            else:
                args, kwargs = (), {self._first_name: req}
        if self.wants_headers:
            kwargs["request_headers"] = _title_headers(scope["headers"])
        return args, kwargs

    def _schema_kwargs(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        mt = (content_type or "").split(";", 1)[0].strip().lower()
        if not (mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))):
            raise ClientError(415, "Expects Content-Type to be application/json")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as ex:
            if body:
                raise ClientError(400, f"POST body could not be decoded as JSON: {ex}") from None
            raise ClientError(400, "POST body is empty. Expecting a JSON dictionary.") from None
        except RecursionError:
            raise ClientError(400, self.too_deep_message) from None
        if not isinstance(data, dict):
            raise ClientError(400, "POST body should be a JSON dictionary.")
        if may_be_deeper_than(body, self.max_json_depth) and deeper_than(data, self.max_json_depth):
            raise ClientError(400, self.too_deep_message)
        return self._extract(data)

    @property
    def too_deep_message(self) -> str:
        return f"Request JSON is nested deeper than {self.max_json_depth} levels (MLDEPLOY_MAX_JSON_DEPTH)."

    def _extract(self, data: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for p in self._schema_params:
            value = data.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise ClientError(400, f"A value is not provided for the {p.name!r} parameter.")
            kwargs[p.name] = value
        return kwargs
