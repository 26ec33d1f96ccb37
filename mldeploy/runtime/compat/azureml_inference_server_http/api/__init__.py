"""``azureml_inference_server_http.api``: see ``aml_request`` and ``aml_response``."""
