"""``from azureml.contrib.services.aml_request import rawhttp, AMLRequest`` for classic raw-request scripts.

``@rawhttp`` on ``run(request)`` makes the runtime pass an ``AMLRequest`` (method, path, args, headers, data,
get_data(), get_json(), json, is_json, ...) instead of the body text.
"""

from mldeploy_runtime.rawhttp import AMLRequest, rawhttp

__all__ = ["AMLRequest", "rawhttp"]


def __getattr__(name: str) -> object:
    # the classic module kept the flag in a module global; keep it readable for tools that look at it
    if name == "_rawHttpRequested":
        from mldeploy_runtime import rawhttp as _impl

        return _impl._rawHttpRequested
    raise AttributeError(name)
