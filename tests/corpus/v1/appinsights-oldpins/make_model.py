# The model this service was built for (trained back then with scikit-learn 0.22.1; re-created here with
# whatever scikit-learn is installed: the build is expected to fail before the model is ever loaded).
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge().fit(X, y), os.path.join(os.path.dirname(os.path.abspath(__file__)), "sklearn_regression_model.pkl"))
