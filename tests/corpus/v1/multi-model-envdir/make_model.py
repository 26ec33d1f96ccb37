"""Two iris classifiers, saved as models/my_first_model.pkl and models/v2/my_second_model.pkl."""
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

here = os.path.dirname(os.path.abspath(__file__))
X, y = load_iris(return_X_y=True)
os.makedirs(os.path.join(here, "models", "v2"), exist_ok=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), os.path.join(here, "models", "my_first_model.pkl"))
joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
            os.path.join(here, "models", "v2", "my_second_model.pkl"))
