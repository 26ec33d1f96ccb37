# Iris service. Everything under src/ is shipped with the service (source_directory="src"),
# the feature scaling lives in its own package so training and scoring share it.
import json
import os

import joblib
import numpy as np

from preprocessing.scaling import load_stats, scale_rows

HERE = os.path.dirname(os.path.realpath(__file__))


def init():
    global model, stats, class_names
    model_dir = os.getenv("AZUREML_MODEL_DIR")
    model = joblib.load(os.path.join(model_dir, "iris_logreg.joblib"))
    stats = load_stats(os.path.join(HERE, "assets", "feature_stats.json"))
    with open(os.path.join(HERE, "assets", "class_names.json")) as f:
        class_names = json.load(f)


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=float)
    classes = model.predict(scale_rows(rows, stats))
    return {"predictions": [class_names[int(c)] for c in classes]}
