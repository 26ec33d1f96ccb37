# Our training job writes outputs/model.pkl (the scoring script was copied from the sample and
# still expects sklearn_regression_model.pkl).
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

here = os.path.dirname(os.path.abspath(__file__))
X, y = load_diabetes(return_X_y=True)
os.makedirs(os.path.join(here, "outputs"), exist_ok=True)
joblib.dump(Ridge().fit(X, y), os.path.join(here, "outputs", "model.pkl"))
