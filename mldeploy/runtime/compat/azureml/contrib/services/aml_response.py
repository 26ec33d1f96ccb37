"""``from azureml.contrib.services.aml_response import AMLResponse`` for classic raw-request scripts.

``AMLResponse(message, status_code, response_headers=None, json_str=False)`` returned by ``run()`` is sent
as-is.
"""

from mldeploy_runtime.rawhttp import AMLResponse

__all__ = ["AMLResponse"]
