# Ridge on the diabetes data, saved as sklearn_regression_model.pkl next to the spec (registered as
# sklearn_regression_model_local_adv, as in the notebook).
import os

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

X, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge(alpha=1.0).fit(X, y),
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "sklearn_regression_model.pkl"))
