"""The OpenAPI (swagger) documents served at ``GET /swagger.json``.

Behaviour follows azureml-inference-server-http 1.x (server/swagger.py):

* ``?version=`` selects the document: ``2``/``2.0`` (the default), ``3``/``3.0`` or ``3.1``; any other value
  is a
  404 with ``{"message": ...}``.
* A file the user shipped in the app root wins: ``swagger.json`` or ``swagger2.json`` for version 2,
  ``swagger3.json`` for 3, ``swagger3.1.json`` for 3.1.
* Otherwise the document is generated from a template; ``ServiceInput``/``ServiceOutput`` are the schemas
  inference-schema recorded for the decorated ``run()`` (``get_input_schema``/``get_output_schema``), or
  ``{"type": "object", "example": {}}`` when ``run()`` is not decorated.
* A version the decorators do not support (inference-schema's ``get_supported_versions``: e.g. swagger 2
  cannot
  describe mixed-type arrays) is not generated and answers 404.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from typing import Any

# version alias -> canonical version
VERSION_ALIASES = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
# canonical version -> versions as inference-schema names them
_SCHEMA_VERSION_NAMES = {"2": {"2", "2.0"}, "3": {"3", "3.0"}, "3.1": {"3.1"}}
_USER_FILES = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",), "3.1": ("swagger3.1.json",)}

_ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}
_HEALTH_DESC = "Simple health check endpoint to ensure the service is up at any given point."
_SCORE_DESC = "Run web service's model and get the prediction output"
_OK_DESC = "The service processed the input correctly and provided a result prediction, if applicable."
_HEALTHY_DESC = "If service is up and running, this response will be returned with the content 'Healthy'"
_INPUT_DESC = "The input payload for executing the real-time machine learning service."
_ERR_DESC = "The service failed to execute due to an error."


def _swagger2(title: str, version: str, prefix: str, inp: Any, out: Any) -> dict[str, Any]:
    err = {"description": _ERR_DESC, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": {
            "title": title,
            "description": f"API specification for the Azure Machine Learning service {title}",
            "version": version,
        },
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "Bearer": {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "description": "For example: Bearer abc123",
            }
        },
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESC,
                    "responses": {
                        "200": {
                            "description": _HEALTHY_DESC,
                            "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"},
                        },
                        "default": err,
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESC,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": _INPUT_DESC,
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {"description": _OK_DESC, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                        "default": err,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "type": "integer",
                            "enum": [2, 3],
                        }
                    ],
                    "responses": {
                        "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                        "default": err,
                    },
                }
            },
        },
        "definitions": {"ServiceInput": inp, "ServiceOutput": out, "ErrorResponse": _ERROR},
    }


def _openapi3(title: str, version: str, prefix: str, inp: Any, out: Any, openapi: str) -> dict[str, Any]:
    err = {
        "description": _ERR_DESC,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    return {
        "openapi": openapi,
        "info": {
            "title": title,
            "description": f"API specification for the Azure Machine Learning service {title}",
            "version": version,
        },
        "security": [{"Bearer": []}],
        "paths": {
            f"{prefix}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH_DESC,
                    "responses": {
                        "200": {
                            "description": _HEALTHY_DESC,
                            "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
                        },
                        "default": err,
                    },
                }
            },
            f"{prefix}/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESC,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": _INPUT_DESC,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceInput"}}},
                    },
                    "responses": {
                        "200": {
                            "description": _OK_DESC,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}},
                        },
                        "default": err,
                    },
                }
            },
            f"{prefix}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "enum": [2, 3]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "default": err,
                    },
                }
            },
        },
        "components": {
            "schemas": {"ServiceInput": inp, "ServiceOutput": out, "ErrorResponse": _ERROR},
            "securitySchemes": {
                "Bearer": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "For example: Bearer abc123",
                }
            },
        },
    }


def _schemas(run: Callable[..., Any], decorated: bool) -> tuple[Any, Any, set[str]]:
    """Input schema, output schema and the supported versions (inference-schema's names)."""
    if decorated and "inference_schema" in sys.modules:
        from inference_schema.schema_util import (  # only when the user's script uses inference-schema
            get_input_schema,
            get_output_schema,
            get_supported_versions,
        )

        return (
            copy.deepcopy(get_input_schema(run)),
            copy.deepcopy(get_output_schema(run)),
            set(get_supported_versions(run)),
        )
    generic = {"type": "object", "example": {}}
    return generic, copy.deepcopy(generic), {"2.0", "3.0", "3.1"}


class SwaggerDocs:
    """Pre-serialized swagger documents per canonical version; built once after init()."""

    def __init__(
        self,
        app_root: str,
        run: Callable[..., Any],
        decorated: bool,
        title: str,
        version: str,
        path_prefix: str,
        log: Callable[[str], None],
    ) -> None:
        self.docs: dict[str, bytes] = {}
        self.errors: list[str] = []
        prefix = f"/{path_prefix.strip('/')}" if path_prefix.strip("/") else ""
        try:
            inp, out, supported = _schemas(run, decorated)
        except Exception as ex:  # a broken decorator must not take the service down
            log(f"swagger generation failed: {type(ex).__name__}: {ex}")
            inp = out = None
            supported = set()
        for canonical, names in _SCHEMA_VERSION_NAMES.items():
            doc: Any = None
            for filename in _USER_FILES[canonical]:
                path = os.path.join(app_root, filename)
                if os.path.isfile(path):
                    try:
                        with open(path, encoding="utf-8") as f:
                            doc = json.load(f)
                        log(f"swagger {canonical}: using {path}")
                        break
                    except (OSError, ValueError) as ex:
                        log(f"swagger {canonical}: ignoring unreadable {path}: {ex}")
            if doc is None and inp is not None and supported & names:
                if canonical == "2":
                    doc = _swagger2(title, version, prefix, inp, out)
                else:
                    doc = _openapi3(title, version, prefix, inp, out, "3.1.0" if canonical == "3.1" else "3.0.3")
            if doc is not None:
                try:
                    self.docs[canonical] = json.dumps(doc).encode()
                except (TypeError, ValueError) as ex:
                    log(f"swagger {canonical}: cannot serialize the schema: {ex}")
        self.versions = sorted(self.docs)

    def get(self, requested: str | None) -> tuple[int, bytes]:
        """(status, body) for ``GET /swagger.json?version=<requested>``."""
        requested = "2" if requested is None else requested
        canonical = VERSION_ALIASES.get(requested)
        supported = ", ".join(self.versions)
        if canonical is None:
            msg = f"Swagger version [{requested}] is not valid. Supported versions: [{supported}]."
            return 404, json.dumps({"message": msg}).encode()
        doc = self.docs.get(canonical)
        if doc is None:
            msg = (
                f"Swagger version [{requested}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}]."
            )
            return 404, json.dumps({"message": msg}).encode()
        return 200, doc
