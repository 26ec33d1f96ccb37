# Lasso on the diabetes data -> diabetes_lasso.pkl
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso

X, y = load_diabetes(return_X_y=True)
joblib.dump(Lasso(alpha=0.1).fit(X, y), os.path.join(os.path.dirname(os.path.abspath(__file__)), "diabetes_lasso.pkl"))
