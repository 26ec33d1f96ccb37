"""Compatibility shim for ``azureml.contrib.services`` (raw HTTP access in ``run()``)."""
