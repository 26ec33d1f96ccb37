# Raw-body scoring script: run() receives the request body as a string.
import json
import os

import joblib

model = None
labels = None


def init():
    global model, labels
    folder = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model")  # registered from folder model/
    model = joblib.load(os.path.join(folder, "model.joblib"))
    with open(os.path.join(folder, "labels.json")) as handle:
        labels = json.load(handle)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"predictions": [labels[int(i)] for i in model.predict(rows)]}
