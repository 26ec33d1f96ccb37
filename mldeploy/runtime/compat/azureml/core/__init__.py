"""Compatibility shim: ``from azureml.core import Model`` / ``from azureml.core.model import Model``."""

from .model import Model, ModelNotFoundException

__all__ = ["Model", "ModelNotFoundException"]
