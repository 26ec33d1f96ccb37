import json
import os

import joblib
import numpy as np


def init():
    global model, means, stds, columns
    model = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "churn_model.pkl"))
    # normalisation constants computed at training time (same folder as this script)
    with open("normalisation.json") as f:
        stats = json.load(f)
    columns = stats["columns"]
    means = np.array([stats["mean"][c] for c in columns])
    stds = np.array([stats["std"][c] for c in columns])


def run(raw_data):
    records = json.loads(raw_data)["data"]
    rows = np.array([[r[c] for c in columns] for r in records], dtype=float)
    churn = model.predict_proba((rows - means) / stds)[:, 1]
    return {"churn_probability": [round(float(p), 4) for p in churn]}
