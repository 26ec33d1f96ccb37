import json

import joblib
import numpy as np
from azureml.core.model import Model

models = {}


def init():
    # both models are deployed with this service; look each up by its registered name
    for key, registered in (("prediction1", "my_first_model"), ("prediction2", "my_second_model")):
        models[key] = joblib.load(Model.get_model_path(model_name=registered))


def run(raw_data):
    try:
        rows = np.array(json.loads(raw_data)['data'])
        return {key: m.predict(rows).tolist() for key, m in models.items()}
    except Exception as e:
        return str(e)
