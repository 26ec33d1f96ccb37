import json
import os

import joblib
import numpy as np

# Two models are deployed with this service, so AZUREML_MODEL_DIR is the folder
# that holds all of them, each under <registered name>/<version>/<file name>.
FIRST = ("my_first_model", "1", "my_first_model.pkl")
SECOND = ("my_second_model", "2", "my_second_model.pkl")


def init():
    global first, second
    root = os.getenv("AZUREML_MODEL_DIR")
    first = joblib.load(os.path.join(root, *FIRST))
    second = joblib.load(os.path.join(root, *SECOND))


def run(raw_data):
    rows = np.array(json.loads(raw_data)["data"])
    return {
        "logistic": first.predict(rows).tolist(),
        "tree": second.predict(rows).tolist(),
    }
