# Written against the standalone inference server (pip install azureml-inference-server-http;
# azmlinfsrv --entry_script score.py) so it runs locally without the SDK.
import os

import joblib
from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "wine_forest.joblib"))


@rawhttp
def run(request: AMLRequest):
    if request.method == "GET":
        return AMLResponse({"status": "ready", "features": int(model.n_features_in_)}, 200, json_str=True)
    payload = request.get_json()
    if not isinstance(payload, dict) or "data" not in payload:
        return AMLResponse({"error": "expected a JSON object with a 'data' list"}, 400, json_str=True)
    predictions = model.predict(payload["data"]).tolist()
    return AMLResponse({"predictions": predictions}, 200, json_str=True)
