# Diabetes scores for the clinic dashboard (a browser app on another origin, hence the CORS header).
# GET echoes the URL it was called with, octet-stream bodies are echoed back (used by the
# gateway's health check), JSON bodies are scored.
import json
import os

import joblib
import numpy as np
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    global model
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl"))
    print("init done")


@rawhttp
def run(request):
    print("got %s" % request)
    if request.method == "GET":
        return AMLResponse(request.full_path.encode(), 200)
    if request.method != "POST":
        return AMLResponse("unsupported method", 500)

    body = request.get_data(False)
    if request.headers.get("Content-Type", "").startswith("application/octet-stream"):
        return AMLResponse(body, 200, {"Content-Type": "application/octet-stream"})

    rows = np.array(json.loads(body)["data"])
    resp = AMLResponse(json.dumps({"predictions": model.predict(rows).tolist()}), 200)
    resp.headers['Access-Control-Allow-Origin'] = '*'
    return resp
