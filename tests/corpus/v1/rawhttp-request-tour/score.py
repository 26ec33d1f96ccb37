# A gateway-facing scorer that leans on every part of the Flask request a v1 @rawhttp script used:
# query args with types, cookies, the caller's address and agent, the bearer token the gateway forwards,
# the raw stream, the WSGI environ, and answers built as AMLResponse objects (streamed, with its own ids).
import json
import os

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    global weights
    with open(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "tour_model", "weights.json")) as f:
        weights = json.load(f)


@rawhttp
def run(request):
    what = request.args.get("what", "tour")
    if what == "json":
        # request.json on a body that is not JSON: the classic server answered 500
        return {"got": request.json}
    if what == "force":
        return {"got": request.get_json(force=True)}
    if what == "stream":
        def rows():
            for i, w in enumerate(weights):
                yield "%d,%s\n" % (i, w)
        return AMLResponse(rows(), 200, {"Content-Type": "text/csv"})
    if what == "ids":
        return AMLResponse("tagged", 200, {"x-request-id": "from-the-script", "X-Extra": "a, b"})
    if what == "status":
        return AMLResponse(json.dumps({"error": "teapot"}), 418, {"Content-Type": "application/json"})
    auth = request.authorization
    return {
        "method": request.method,
        "path": request.path,
        "full_path": request.full_path,
        "base_url": request.base_url,
        "url_root": request.url_root,
        "host": request.host,
        "args": request.args.to_dict(flat=False),
        "top": request.args.get("top", default=1, type=int),
        "cookies": request.cookies.to_dict(),
        "remote_addr": request.remote_addr,
        "user_agent": request.user_agent.string,
        "auth": [auth.type, auth.token] if auth else None,
        "tour_headers": sorted([k, v] for k, v in request.headers if k.lower().startswith("x-tour")),
        "body": request.stream.read().decode("utf-8", "replace"),
        "environ": {k: request.environ.get(k) for k in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "wsgi.url_scheme")},
        "mimetype": request.mimetype,
        "is_json": request.is_json,
        "content_length": request.content_length,
        "score": sum(weights),
    }
