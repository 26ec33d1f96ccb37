"""Raw-request mode: ``@rawhttp`` on ``run()``, ``AMLRequest`` in, ``AMLResponse`` (or any JSON value) out.

Re-exported by the compatibility modules ``azureml.contrib.services.aml_request`` / ``aml_response`` (and
``azureml_inference_server_http.api.*``) so that classic scripts work unchanged. The classes are werkzeug's
request and response (see ``werkzeug_bridge``), as the classic Flask server's were.
"""

from __future__ import annotations

import contextlib
from typing import Any

RAWHTTP_ATTR = "_mldeploy_rawhttp"


def rawhttp(func: Any) -> Any:
    """Mark ``run()`` so that it receives the request object instead of the body text."""
    with contextlib.suppress(AttributeError, TypeError):
        setattr(func, RAWHTTP_ATTR, True)
    # classic scripts/tools sometimes look at this module global
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


_rawHttpRequested = False


def __getattr__(name: str) -> Any:
    # The request and response classes are werkzeug's (werkzeug_bridge): loaded when a script asks for them.
    if name in ("AMLRequest", "AMLResponse"):
        from . import werkzeug_bridge

        return getattr(werkzeug_bridge, name)
    raise AttributeError(name)
