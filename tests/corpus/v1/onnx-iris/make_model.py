"""Iris logistic regression exported as ONNX (iris_logreg.onnx), written without skl2onnx/onnx.

The graph is MatMul -> Add -> Softmax (output "probabilities") and ArgMax (output "label"), opset 13;
the protobuf is encoded by hand below so only scikit-learn and numpy are needed.
"""
import os

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number, value):
    """Encode one protobuf field: int -> varint, bytes/str -> length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def tensor(name, array):  # TensorProto: dims=1, data_type=2 (FLOAT=1), name=8, raw_data=9
    array = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(field(1, d) for d in array.shape) + field(2, 1) + field(8, name) + field(9, array.tobytes())


def value_info(name, elem_type, dims):  # ValueInfoProto{name=1, type=2{tensor_type=1{elem_type=1, shape=2}}}
    shape = b"".join(field(1, field(2, d) if isinstance(d, str) else field(1, d)) for d in dims)
    return field(1, name) + field(2, field(1, field(1, elem_type) + field(2, shape)))


def node(op, inputs, outputs, **attrs):  # NodeProto: input=1, output=2, op_type=4, attribute=5
    body = b"".join(field(1, i) for i in inputs) + b"".join(field(2, o) for o in outputs) + field(4, op)
    for key, val in attrs.items():  # AttributeProto: name=1, i=3, type=20 (INT=2)
        body += field(5, field(1, key) + field(3, val & 0xFFFFFFFFFFFFFFFF) + field(20, 2))
    return body


X, y = load_iris(return_X_y=True)
clf = LogisticRegression(max_iter=1000).fit(X, y)

graph = (
    field(1, node("MatMul", ["float_input", "coef"], ["scores_raw"]))
    + field(1, node("Add", ["scores_raw", "intercept"], ["scores"]))
    + field(1, node("Softmax", ["scores"], ["probabilities"], axis=1))
    + field(1, node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))
    + field(2, "iris_logreg")
    + field(5, tensor("coef", clf.coef_.T))
    + field(5, tensor("intercept", clf.intercept_))
    + field(11, value_info("float_input", 1, ["N", 4]))
    + field(12, value_info("label", 7, ["N"]))
    + field(12, value_info("probabilities", 1, ["N", 3]))
)
# ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8{domain=1, version=2}
model = field(1, 7) + field(2, "make_model.py") + field(7, graph) + field(8, field(1, "") + field(2, 13))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "iris_logreg.onnx"), "wb") as f:
    f.write(model)
