# Ridge on the diabetes data -> sklearn_regression_model.pkl
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge().fit(X, y), os.path.join(os.path.dirname(os.path.abspath(__file__)), "sklearn_regression_model.pkl"))
