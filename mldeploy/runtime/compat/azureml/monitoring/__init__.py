"""Compatibility shim for ``azureml.monitoring`` (``azureml-monitoring``, replaced by the mldeploy runtime).

``ModelDataCollector`` collected scoring inputs and outputs to Azure Blob storage in the classic service. Here
``collect()`` writes one line to the log (at DEBUG unless ``MLDEPLOY_DATA_COLLECTION_LOG=info``) and returns,
so scripts that collect data keep running unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

__all__ = ["ModelDataCollector"]

_log = logging.getLogger("mldeploy_runtime.data_collection")


class ModelDataCollector:
    def __init__(
        self,
        model_name: str,
        designation: str = "default",
        feature_names: list[str] | None = None,
        workspace: str = "default/default/default",
        webservice_name: str = "default",
        model_version: str = "default",
        **kwargs: Any,
    ) -> None:
        self.model_name = model_name
        self.designation = designation
        self.feature_names = list(feature_names or [])
        self._level = logging.INFO if os.environ.get("MLDEPLOY_DATA_COLLECTION_LOG") == "info" else logging.DEBUG

    def collect(self, input_data: Any, user_correlation_id: str = "") -> str:
        """Log what the classic collector would have uploaded; return a correlation id as it did."""
        correlation_id = user_correlation_id or str(uuid.uuid4())
        if _log.isEnabledFor(self._level):
            try:
                shown = json.dumps(input_data.tolist() if hasattr(input_data, "tolist") else input_data)[:1000]
            except (TypeError, ValueError):
                shown = repr(input_data)[:1000]
            _log.log(
                self._level, "data collection %s/%s %s: %s", self.model_name, self.designation, correlation_id, shown
            )
        return correlation_id

    def add_correlations(self, input_data: Any, correlations: dict[str, Any]) -> Any:
        return input_data
