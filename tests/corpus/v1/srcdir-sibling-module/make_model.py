"""Train the iris model on features scaled with src/assets/feature_stats.json; writes model/iris_logreg.joblib."""
import os
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

here = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep src/ clean: it is shipped as is
sys.path.insert(0, os.path.join(here, "src"))
from preprocessing.scaling import load_stats, scale_rows  # noqa: E402

X, y = load_iris(return_X_y=True)
stats = load_stats(os.path.join(here, "src", "assets", "feature_stats.json"))
clf = LogisticRegression(max_iter=1000).fit(scale_rows(X, stats), y)
os.makedirs(os.path.join(here, "model"), exist_ok=True)
joblib.dump(clf, os.path.join(here, "model", "iris_logreg.joblib"))
