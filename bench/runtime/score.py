# The scoring script every server in the runtime benchmark runs, unchanged: a classic undecorated
# AzureML script (run() receives the request body as a string). It reports how long loading it and
# init() took, so the benchmark can subtract that from the start-to-first-200 time.
import time

_T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))
    sys.stderr.write(f"bench: load+init seconds={time.perf_counter() - _T0:.4f}\n")
    sys.stderr.flush()


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return {"predictions": model.predict(data).tolist()}
