import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

MODEL_FILE = 'sklearn_regression_model.pkl'


def init():
    # runs once at container start
    global model
    model = joblib.load(os.path.join(os.environ['AZUREML_MODEL_DIR'], MODEL_FILE))


@input_schema('data', NumpyParameterType(np.array([[0.1, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]])))
@output_schema(NumpyParameterType(np.array([4429.9])))
def run(data):
    # runs per request; anything JSON serialisable can come back
    return model.predict(data).tolist()
