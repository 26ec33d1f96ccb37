"""``from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp`` (the newer server's path)."""

from mldeploy_runtime.rawhttp import AMLRequest, rawhttp

__all__ = ["AMLRequest", "rawhttp"]
