"""Iris scoring for the partner portal.

GET  /score?sepal_length=..&sepal_width=..&petal_length=..&petal_width=..[&digits=2]  one flower from the URL
POST /score  {"data": [[...], ...]}  several flowers; the portal posts it as text/plain
Calls carrying X-Client-* headers get them echoed back so the portal can match answers.
"""
import json
import os

import joblib
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "iris_svc.pkl"))


def _client_headers(request):
    echoed = {}
    for name, value in request.headers:
        if name.lower().startswith("x-client-"):
            echoed[name] = value
    return echoed


def _reply(payload, status=200):
    resp = AMLResponse(json.dumps(payload), status, {"Content-Type": "application/json"})
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


@rawhttp
def run(request):
    if request.method == "GET":
        args = request.args.to_dict()
        digits = request.args.get("digits", default=3, type=int)
        missing = [f for f in FEATURES if f not in args]
        if missing:
            return _reply({"error": "missing query parameters", "missing": missing}, 400)
        row = [request.args.get(f, type=float) for f in FEATURES]
        proba = model.predict_proba([row])[0]
        best = int(proba.argmax())
        return _reply({"query": args, "prediction": CLASSES[best], "confidence": round(float(proba[best]), digits)})

    if request.method == "POST":
        body = request.get_json(force=True)
        predictions = [CLASSES[int(i)] for i in model.predict(body["data"])]
        return _reply({"predictions": predictions, "client": _client_headers(request)})

    return AMLResponse("Method not allowed", 405)
