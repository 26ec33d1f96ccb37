# An Azure ML (SDK v1) style scoring script, unchanged: init() loads the model from
# AZUREML_MODEL_DIR, run() is typed by inference-schema decorators.
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model
    # AZUREML_MODEL_DIR is the folder that holds the registered model under its own file name.
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl")
    model = joblib.load(model_path)


input_sample = np.array([[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]])
output_sample = np.array([206.1])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    result = model.predict(data)
    return result.tolist()
