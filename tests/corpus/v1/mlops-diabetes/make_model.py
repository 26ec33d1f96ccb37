"""Train the Ridge model the pipeline registers as 'sklearn_regression_model.pkl' (outputs/ folder)."""
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

here = os.path.dirname(os.path.abspath(__file__))
X, y = load_diabetes(return_X_y=True)
reg = Ridge(alpha=0.5).fit(X, y)
os.makedirs(os.path.join(here, "outputs"), exist_ok=True)
joblib.dump(reg, os.path.join(here, "outputs", "sklearn_regression_model.pkl"))
