# Multinomial logistic regression on iris (predict_proba for the confidence) -> iris_svc.pkl
# (the file kept its name from when this was an SVC)
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(C=0.5, max_iter=1000).fit(X, y),
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "iris_svc.pkl"))
