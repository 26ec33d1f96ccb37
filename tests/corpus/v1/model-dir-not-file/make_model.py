# The model is a folder: iris_model/model.joblib + iris_model/classes.json
import json
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier

here = os.path.dirname(os.path.abspath(__file__))
data = load_iris()
os.makedirs(os.path.join(here, "iris_model"), exist_ok=True)
joblib.dump(KNeighborsClassifier(n_neighbors=5).fit(data.data, data.target), os.path.join(here, "iris_model", "model.joblib"))
with open(os.path.join(here, "iris_model", "classes.json"), "w") as f:
    json.dump(list(data.target_names), f)
