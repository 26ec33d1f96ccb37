"""Train the iris classifier example; it is registered from a folder (model + labels)."""

import json
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

here = Path(__file__).parent
data = load_iris()
model = LogisticRegression(max_iter=500).fit(data.data, data.target)
folder = here / "model"
folder.mkdir(exist_ok=True)
joblib.dump(model, folder / "model.joblib")
(folder / "labels.json").write_text(json.dumps(list(map(str, data.target_names))))
print(f"trained LogisticRegression on {len(data.data)} rows -> {folder}/")
