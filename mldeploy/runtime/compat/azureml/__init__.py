"""mldeploy compatibility shim for the retired Azure ML SDK v1 (``azureml-core``/``azureml-defaults``).

Only what scoring scripts use inside a deployed service: ``azureml.core.model.Model.get_model_path``,
the raw-request helpers in ``azureml.contrib.services`` and ``azureml.monitoring.ModelDataCollector``.

A namespace *extension*, not a package of its own: this folder is the last entry of ``sys.path``
(a ``.pth`` file in the image's venv), and ``azureml`` extends its path over every ``azureml``
folder on ``sys.path`` — so ``azureml.train.automl`` or a real ``azureml.core`` that the user's
environment installs is found first, and the shim fills in only what is missing.
"""

_own = __path__[0]
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
# This folder last: where a real azureml-* distribution provides a module, the real one is imported.
__path__ = [p for p in __path__ if p != _own] + [_own]
