"""``from azureml_inference_server_http.api.aml_response import AMLResponse`` (the newer server's path)."""

from mldeploy_runtime.rawhttp import AMLResponse

__all__ = ["AMLResponse"]
