# Batch-ish scoring: the caller posts many rows and reads the CSV back as it is produced.
import json
import os

import joblib
import numpy as np
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "diabetes_lasso.pkl"))
    print("Init complete")


def generate(rows):
    yield "row,prediction\n"
    for i, row in enumerate(rows):
        value = model.predict(np.asarray([row]))[0]
        yield "%d,%.2f\n" % (i, value)


@rawhttp
def run(request: AMLRequest):
    rows = json.loads(request.data)["data"]
    return AMLResponse(generate(rows), 200, {"Content-Type": "text/csv"})
