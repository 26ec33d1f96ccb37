import json
import time

import numpy as np
import onnxruntime
from azureml.core.model import Model

CLASSES = ["setosa", "versicolor", "virginica"]


def init():
    global session, input_name
    model_path = Model.get_model_path(model_name="iris_logreg_onnx")
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name


def run(input_data):
    try:
        data = np.array(json.loads(input_data)["data"]).astype("float32")
        start = time.time()
        label, probabilities = session.run(["label", "probabilities"], {input_name: data})
        elapsed_ms = (time.time() - start) * 1000
        print("inference took %.2f ms" % elapsed_ms)
        return {
            "label": [CLASSES[i] for i in label.tolist()],
            "probability": np.round(probabilities.max(axis=1).astype("float64"), 3).tolist(),
        }
    except Exception as e:
        return {"error": str(e)}
