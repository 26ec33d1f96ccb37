import json
import time

import joblib
import numpy
from azureml.core.model import Model
from azureml.monitoring import ModelDataCollector


def init():
    global model, inputs_dc, prediction_dc
    print("model initialized " + time.strftime("%H:%M:%S"))

    # "sklearn_regression_model.pkl" is the name the model was registered under
    model_path = Model.get_model_path(model_name='sklearn_regression_model.pkl')
    model = joblib.load(model_path)

    # inputs and predictions end up in the workspace blob under /modeldata/...
    # (only when the AKS service was deployed with collect_model_data=True)
    inputs_dc = ModelDataCollector("sklearn_regression_model", designation="inputs",
                                   feature_names=["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"])
    prediction_dc = ModelDataCollector("sklearn_regression_model", designation="predictions",
                                       feature_names=["progression"])


def run(raw_data):
    try:
        data = numpy.array(json.loads(raw_data)['data'])
        result = model.predict(data)
        inputs_dc.collect(data)
        prediction_dc.collect(result)
        print("scored %d rows %s" % (len(result), time.strftime("%H:%M:%S")))
        return result.tolist()
    except Exception as e:
        error = str(e)
        print(error + time.strftime(" %H:%M:%S"))
        return error
