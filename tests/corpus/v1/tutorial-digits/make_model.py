# Logistic regression on the 8x8 digits that ship with scikit-learn -> sklearn_digits_model.pkl
import os

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

X, y = load_digits(return_X_y=True)
clf = LogisticRegression(C=1.0 / 50, max_iter=2000).fit(X[:1500], y[:1500])
joblib.dump(clf, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sklearn_digits_model.pkl"))
