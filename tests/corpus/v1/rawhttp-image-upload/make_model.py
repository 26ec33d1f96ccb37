"""Colour classifier (mean RGB -> red/green/blue) in colour_model/, plus the test photo sample.png."""
import json
import os
import struct
import zlib

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)
centres = np.array([[0.8, 0.2, 0.2], [0.2, 0.7, 0.2], [0.2, 0.3, 0.8]])
X = np.vstack([c + rng.normal(0, 0.08, size=(60, 3)) for c in centres]).clip(0, 1)
y = np.repeat([0, 1, 2], 60)
os.makedirs(os.path.join(here, "colour_model"), exist_ok=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), os.path.join(here, "colour_model", "model.joblib"))
with open(os.path.join(here, "colour_model", "labels.json"), "w") as f:
    json.dump(["red", "green", "blue"], f)


def png(width, height, pixel):
    """A minimal 8-bit RGB PNG, every pixel = pixel(x, y)."""
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, yy)) for x in range(width)) for yy in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# a mostly blue 16x12 photo with a lighter stripe
with open(os.path.join(here, "sample.png"), "wb") as f:
    f.write(png(16, 12, lambda x, yy: (60, 80, 200) if yy % 4 else (120, 140, 230)))
