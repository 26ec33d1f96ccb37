"""Standardise iris measurements with fixed statistics (shared by train.py and score.py)."""
import json

import numpy as np


def load_stats(path):
    with open(path) as f:
        raw = json.load(f)
    return np.asarray(raw["mean"], dtype=float), np.asarray(raw["std"], dtype=float)


def scale_rows(rows, stats):
    mean, std = stats
    return (np.asarray(rows, dtype=float) - mean) / std
