"""mldeploy scoring runtime: serves an AzureML-style ``score.py`` (``init()`` + ``run()``) over HTTP.

Runs inside every image mldeploy builds as ``python -m mldeploy_runtime`` (``PYTHONPATH=/opt/mldeploy/runtime``).
Depends only on the standard library and uvicorn (uvloop + httptools when installed); ``inference_schema`` is used
only when the user's script imports it. Never imports ``mldeploy``.

Routes: ``GET /`` liveness (200 as soon as the port is open), ``GET /readyz`` readiness (200 once ``init()``
returned in every worker), ``GET /info`` (``init_seconds``, state, limits), ``POST /score`` (and the classic
``GET /score?...``), ``GET /swagger.json[?version=2|3|3.1]``.

Modules: ``server`` (process, workers, loader thread), ``app`` (the raw ASGI app: routes, limits, auth, the
``run()`` call), ``user_script`` (loading the script, turning a request into ``run()`` arguments), ``state``
(loading/ready/failed, shared between workers), ``auth`` (primary/secondary keys), ``swagger``, ``rawhttp``
(``AMLRequest``/``AMLResponse``), ``logs`` (the ``mldeploy-runtime:`` marker lines), ``settings`` (environment).

Settings, behaviour and the differences from azureml-inference-server-http 1.5.1: ``../README.md``.
Exit codes: 3 when a setting is invalid, the script cannot be loaded or ``init()`` raises (with
``mldeploy-runtime:`` marker lines and the traceback on stderr), 1 when the port cannot be bound, 0 after
SIGTERM/SIGINT.
"""

__version__ = "0.2.0"
