"""Synthetic churn model (logistic regression on 3 normalised columns) -> churn_model.pkl."""
import json
import os

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "normalisation.json")) as f:
    stats = json.load(f)
cols = stats["columns"]
rng = np.random.default_rng(0)
raw = np.column_stack([rng.uniform(0, 72, 400), rng.uniform(20, 120, 400), rng.poisson(2, 400)])
churned = (0.04 * raw[:, 2] * 10 - 0.05 * raw[:, 0] + 0.02 * raw[:, 1] + rng.normal(0, 0.5, 400)) > 0
scaled = (raw - np.array([stats["mean"][c] for c in cols])) / np.array([stats["std"][c] for c in cols])
joblib.dump(LogisticRegression().fit(scaled, churned.astype(int)), os.path.join(here, "churn_model.pkl"))
