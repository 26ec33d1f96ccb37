"""Compatibility shim: scripts written for ``azureml-inference-server-http`` import its request helpers
from ``azureml_inference_server_http.api``; the mldeploy runtime provides them (last on ``sys.path``, so an
installed ``azureml-inference-server-http`` would win)."""
