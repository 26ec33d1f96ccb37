# Small random forest on the sklearn wine data -> wine_forest.joblib
import os

import joblib
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

X, y = load_wine(return_X_y=True)
forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
joblib.dump(forest, os.path.join(os.path.dirname(os.path.abspath(__file__)), "wine_forest.joblib"))
