"""
Scoring entry point for the diabetes regression service.
Deployed from the MLOps pipeline (register -> build image -> ACI/AKS).
"""
import os

import joblib
import numpy
from azureml.core.model import Model
from inference_schema.parameter_types.numpy_parameter_type import \
    NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    # load the registered model once per container
    global model

    # only one model is deployed with this service, so we take its name
    # from the folder the platform created for it:
    #   AZUREML_MODEL_DIR = azureml-models/<model name>/<version>
    registered_name = os.getenv("AZUREML_MODEL_DIR").split("/")[1]
    model_path = Model.get_model_path(registered_name)
    model = joblib.load(model_path)


input_sample = numpy.array([
    [0.02, -0.04, 0.06, 0.02, -0.04, -0.03, -0.04, 0.00, 0.02, -0.02],
    [-0.01, 0.05, -0.05, -0.03, -0.01, -0.02, 0.07, -0.04, -0.07, -0.09]])
output_sample = numpy.array([190.5, 90.2])


# swagger is generated from these samples (GET /swagger.json)
@input_schema('data', NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data, request_headers):
    result = model.predict(data)

    # one structured trace line per call, picked up by App Insights;
    # X-Ms-Request-Id is set by the front end, Traceparent by callers
    # that do distributed tracing
    print('{{"RequestId":"{0}", "TraceParent":"{1}", "Rows":{2}}}'.format(
        request_headers.get("X-Ms-Request-Id", ""),
        request_headers.get("Traceparent", ""),
        len(result)))

    return {"result": result.tolist()}


if __name__ == "__main__":
    # quick local check: python score.py (needs AZUREML_MODEL_DIR set)
    init()
    print(run(input_sample, {}))
