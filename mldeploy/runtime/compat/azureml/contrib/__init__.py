"""``azureml.contrib``: a namespace shared with real ``azureml-contrib-*`` packages (see ``azureml/__init__``)."""

_own = __path__[0]
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
# This folder last: where a real azureml-* distribution provides a module, the real one is imported.
__path__ = [p for p in __path__ if p != _own] + [_own]
