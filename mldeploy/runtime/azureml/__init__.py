"""mldeploy compatibility shim for the retired Azure ML SDK v1 (``azureml-core``/``azureml-defaults``).

Only what scoring scripts use inside a deployed service: ``azureml.core.model.Model.get_model_path`` and the
raw-request helpers in ``azureml.contrib.services``. Everything else of the SDK is intentionally absent.
"""
