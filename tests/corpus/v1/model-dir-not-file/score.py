import json

import joblib
import numpy as np
from azureml.core.model import Model


def init():
    global model
    # registered with: Model.register(ws, model_path="iris_model", model_name="iris-folder")
    model_path = Model.get_model_path("iris-folder")
    model = joblib.load(model_path)


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
