"""Real werkzeug request and response objects for ``@rawhttp`` scripts, bridged from ASGI.

The classic server handed ``run()`` its Flask request (a werkzeug ``Request``) and returned a Flask
``Response``: scripts use ``request.files``, ``request.form``, ``args.get(k, type=int)``,
``headers`` as (name, value) pairs, ``get_json(force=True)``, ``cookies``, ``authorization``...
and set ``resp.headers[...]``. Imitating that API would never be complete, so this module builds a
WSGI environ from the ASGI request and gives the script werkzeug's own objects. Imported only when
a script uses ``rawhttp`` (werkzeug is not loaded otherwise).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response


class AMLRequest(Request):
    """The request a ``@rawhttp`` ``run()`` receives: werkzeug's, as the classic (Flask) server's was."""


class AMLResponse(Response):
    """A response ``run()`` returns as-is: ``AMLResponse(message, status_code, response_headers, json_str)``.

    As the classic server's: ``message`` str or bytes (``text/html`` unless the headers say otherwise),
    or a generator (streamed), or with ``json_str=True`` any JSON value; ``None`` gives ``{}``. A header
    value with commas becomes repeated headers.
    """

    default_mimetype = "text/html"  # Flask's, which the classic AMLResponse inherited (werkzeug's is text/plain)

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        headers = dict(response_headers or {})
        if message is None:
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
            if any(name.lower() == "content-type" for name in headers):
                del self.headers["Content-Type"]  # the script's own, added below, replaces the default
        self.headers["x-ms-run-function-failed"] = str(bool(run_function_failed))
        for name, value in headers.items():
            for part in str(value).split(","):
                self.headers.add(name, part.strip())


def build_request(scope: dict[str, Any], body: bytes) -> AMLRequest:
    """A werkzeug request with the WSGI environ (PEP 3333) of this ASGI request."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    path = scope.get("path", "/")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", ""),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    # The body is already read in full (and its size checked): without a Content-Length header (a GET, a
    # chunked upload) the request says content_length None as under gunicorn, and reads to the end.
    environ["wsgi.input_terminated"] = True
    return AMLRequest(environ)


def is_response(value: Any) -> bool:
    """Any werkzeug response (an ``AMLResponse``, or one a script made itself) is sent as it is."""
    return isinstance(value, Response)


def response_parts(response: Response) -> tuple[int, list[tuple[bytes, bytes]], Iterator[bytes]]:
    """Status, headers and the body chunks (a generator's chunks as it yields them)."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.to_wsgi_list()]
    return response.status_code, headers, response.iter_encoded()
