"""The bare reference: a minimal ASGI app on uvicorn (uvloop + httptools) calling run() inline.

No routing beyond GET vs POST, no limits, no error handling: the upper bound for any server that
calls the same run() in the same process model. Started as
``python -m uvicorn bare_app:app --loop uvloop --http httptools --no-access-log [--workers N]``
with ``BENCH_SCORE`` naming the scoring script.
"""

import importlib.util
import json
import os

_spec = importlib.util.spec_from_file_location("entry_module", os.environ["BENCH_SCORE"])
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_module.init()
_run = _module.run
_dumps = json.dumps


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        out = _dumps(_run(body.decode())).encode()
    else:
        out = b"Healthy"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": out})
