# Two regressors on the diabetes data, as in the multi-model notebook: first_model.pkl and second_model.pkl
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import BayesianRidge, Ridge

here = os.path.dirname(os.path.abspath(__file__))
x, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge().fit(x, y), os.path.join(here, "first_model.pkl"))
joblib.dump(BayesianRidge().fit(x, y), os.path.join(here, "second_model.pkl"))
