import json
import os
import time

import joblib
import numpy


def log(message):
    # stdout ends up in App Insights "traces" when the service has it enabled
    print("%s %s" % (time.strftime("%H:%M:%S"), message))


def init():
    global model
    model = joblib.load(os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl'))
    log("model loaded")


def run(raw_data):
    try:
        rows = numpy.array(json.loads(raw_data)['data'])
        predictions = model.predict(rows)
        log("scored %d rows" % len(rows))
        return predictions.tolist()
    except Exception as e:
        log("scoring failed: %s" % e)
        return str(e)
