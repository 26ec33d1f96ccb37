"""Start azureml-inference-server-http (``azmlinfsrv``) exactly as its CLI does, bound to 127.0.0.1.

The classic server hard-codes ``0.0.0.0`` as its bind address; the benchmark keeps all traffic on
loopback, so this wrapper only replaces that constant and then runs the unchanged CLI entry point.
"""

import sys

from azureml_inference_server_http import amlserver

amlserver.DEFAULT_HOST = "127.0.0.1"

if __name__ == "__main__":
    sys.exit(amlserver.run())
