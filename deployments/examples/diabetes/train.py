"""Train the diabetes regression example (Ridge on sklearn's bundled diabetes data set)."""

from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

here = Path(__file__).parent
X, y = load_diabetes(return_X_y=True)
model = Ridge(alpha=0.1).fit(X, y)
(here / "model").mkdir(exist_ok=True)
joblib.dump(model, here / "model" / "sklearn_regression_model.pkl")
print(f"trained Ridge on {len(X)} rows -> {here / 'model' / 'sklearn_regression_model.pkl'}")
print("prediction for the first two rows:", model.predict(X[:2]).tolist())
