import json
import os

import joblib
import numpy as np


def init():
    global model
    # AZUREML_MODEL_DIR is created at deployment time: the folder of the registered model
    model_path = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_digits_model.pkl')
    model = joblib.load(model_path)


def run(raw_data):
    data = np.array(json.loads(raw_data)['data'])
    # make prediction
    y_hat = model.predict(data)
    # you can return any data type as long as it is JSON serializable
    return y_hat.tolist()
