# Colour classifier for product photos. Clients either upload the photo as a form field
# (multipart/form-data, field "image") or post the image bytes as the body.
import io
import json
import os

import joblib
import numpy as np
from PIL import Image
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    global model, labels
    folder = os.path.join(os.environ["AZUREML_MODEL_DIR"], "colour_model")
    model = joblib.load(os.path.join(folder, "model.joblib"))
    with open(os.path.join(folder, "labels.json")) as f:
        labels = json.load(f)


def features(img):
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    return rgb.reshape(-1, 3).mean(axis=0)


@rawhttp
def run(request):
    if request.method != "POST":
        return AMLResponse("POST an image", 405)

    if "image" in request.files:
        upload = request.files["image"]
        filename = upload.filename
        img = Image.open(upload.stream)
    else:
        filename = None
        img = Image.open(io.BytesIO(request.get_data()))

    top = request.args.get("top", default=1, type=int)
    threshold = float(request.form.get("threshold", 0.0))

    proba = model.predict_proba([features(img)])[0]
    order = np.argsort(proba)[::-1][:top]
    scores = [{"label": labels[i], "score": round(float(proba[i]), 4)}
              for i in order if proba[i] >= threshold]
    return {"filename": filename, "size": list(img.size), "scores": scores}
