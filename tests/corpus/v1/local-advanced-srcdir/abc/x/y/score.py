import json
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

greeting = None


def init():
    global model, greeting
    model = joblib.load(os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl'))

    # InferenceConfig(source_directory="C:/abc", entry_script="x/y/score.py", ...) puts the whole
    # abc folder into the image, so our side files are readable from there
    with open('./abc/extradata.json') as fh:
        person = json.load(fh)["people"][0]
    greeting = "Hello %s from %s" % (person["name"], person["from"])


@input_schema('data', NumpyParameterType(np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])))
@output_schema(NumpyParameterType(np.array([5021.5])))
def run(data):
    try:
        prediction = model.predict(data)
        return greeting + ", here is your result = " + str(prediction)
    except Exception as e:
        return str(e)
