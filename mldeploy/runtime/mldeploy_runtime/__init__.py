"""mldeploy scoring runtime: serves an AzureML-style ``score.py`` (``init()`` + ``run()``) over HTTP.

Runs inside every image mldeploy builds as ``python -m mldeploy_runtime``
(``PYTHONPATH=/opt/mldeploy/runtime``).
Depends only on the standard library and uvicorn (uvloop + httptools when installed); ``inference_schema`` is
used
only when the user's script imports it. Never imports ``mldeploy``.

Routes
------
``GET /``               200 ``Healthy`` (text). The socket is opened only after init() returned, so this is
                        also readiness.
``GET /readyz``         200 ``Ready`` (same meaning, explicit name).
``GET /info``           JSON: ``init_seconds``, ``load_seconds``, ``input_mode``, entry script, model dir,
                        pid...
``POST /score``         calls ``run()``; 200 with the JSON-serialized result (a str result is a JSON string,
                        ``None`` is ``{}``, an ``AMLResponse`` is sent as-is).
``GET /swagger.json``   OpenAPI document (``?version=2`` default, ``3``, ``3.1``), from the inference-schema
                        decorators, a ``swagger*.json`` shipped in the app root, or a generic one; 404 +
                        message
                        for an unsupported version.
Errors are JSON ``{"message": ...}``: 400 bad input, 404 unknown route, 405 wrong method, 413 body too large,
415 non-JSON content type for a schema-decorated run(), 500 run() raised / timed out / returned a value that
is not JSON-serializable (generic message; details only with ``AZUREML_DEBUG=true``).

Settings (environment; classic azureml-inference-server-http names where one exists)
-------------------------------------------------------------------------------------
``AML_APP_ROOT``             app folder, default ``/var/azureml-app`` (appended to ``sys.path``)
``AZUREML_ENTRY_SCRIPT``     scoring script, relative to AML_APP_ROOT or absolute; default ``score.py``
``AZUREML_SOURCE_DIRECTORY`` extra folder (relative to AML_APP_ROOT) appended to ``sys.path``
``AZUREML_MODEL_DIR``        folder holding the model; listed in the log when init() fails
``MLDEPLOY_PORT``            listening port, default 5001 (classic ``SERVER_PORT`` is accepted too)
``MLDEPLOY_HOST``            bind address, default ``0.0.0.0``
``WORKER_COUNT``             worker processes, default 1; each runs init() and scores one request at a time
``SCORING_TIMEOUT_MS``       per-request limit for run(), default 3600000 (1 h); 0 disables
``MLDEPLOY_MAX_BODY_BYTES``  request body limit, default 1048576 (1 MiB); larger -> 413, run() not called
``AZUREML_DEBUG``            ``true``: 500 bodies include the exception text and traceback (off by default)
``AZUREML_LOG_LEVEL``        uvicorn log level, default ``info``
``MLDEPLOY_ACCESS_LOG``      ``true``: one access-log line per request (costs ~18 % throughput; off by
                             default)
``SERVICE_NAME``, ``SERVICE_VERSION``, ``SERVICE_PATH_PREFIX``  title, version and path prefix in the swagger
``AZUREML_DEBUG_PORT``       start ``debugpy`` listening on this port (if installed);
                             ``MLDEPLOY_DEBUG_WAIT=true``
                             waits for the debugger to attach before loading the script

Exit codes: 3 when the script cannot be loaded or init() raises (with ``mldeploy-runtime:`` marker lines and
the
traceback on stderr, see ``logs.py``), 1 when the port cannot be bound, 0 after SIGTERM/SIGINT.
"""

__version__ = "0.1.0"
