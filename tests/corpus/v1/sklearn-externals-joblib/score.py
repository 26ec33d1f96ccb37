# Diabetes progression scoring (written in 2019 against scikit-learn 0.20, never touched since)
import os
import json

import numpy as np
from sklearn.externals import joblib

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType

model = None


def init():
    global model
    model_file = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl')
    model = joblib.load(model_file)


@input_schema('data', NumpyParameterType(np.array([[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]])))
@output_schema(NumpyParameterType(np.array([210.0])))
def run(data):
    try:
        return model.predict(data).tolist()
    except Exception as err:
        return json.dumps({"error": str(err)})
