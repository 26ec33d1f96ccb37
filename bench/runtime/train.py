"""Train the benchmark models on iris with the benchmark venv's scikit-learn: LogisticRegression and a
50-tree RandomForest, each saved as ``<out>/<name>/model.joblib``."""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

out = Path(sys.argv[1])
data = load_iris()
models = {
    "logreg": LogisticRegression(max_iter=500),
    "rf": RandomForestClassifier(n_estimators=50, random_state=0),
}
for name, model in models.items():
    model.fit(data.data, data.target)
    (out / name).mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / name / "model.joblib")
