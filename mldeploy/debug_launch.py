"""Copied into the image ``mldeploy debug`` builds (never imported by mldeploy): start the scoring runtime under
debugpy. It listens on every interface of the container (the engine publishes the port on the host's 127.0.0.1
only), waits up to ``MLDEPLOY_DEBUG_WAIT_SECONDS`` for a client to finish attaching, then serves either way."""

import os
import runpy
import sys
import threading

import debugpy

# the names are mldeploy.debugging.ENV_DEBUG_PORT / ENV_DEBUG_WAIT (this file runs where mldeploy is not)
port = int(os.environ.get("MLDEPLOY_DEBUG_PORT", "5678"))
seconds = float(os.environ.get("MLDEPLOY_DEBUG_WAIT_SECONDS", "60"))
debugpy.listen(("0.0.0.0", port))  # in the container; the engine publishes it on the host loopback only
print(f"[mldeploy debug] debugpy listens on port {port}: waiting up to {seconds:g} s for a client", flush=True)
# wait_for_client returns once the client's configuration is done (its breakpoints are set); bounded here
waiter = threading.Thread(target=debugpy.wait_for_client, name="mldeploy-debug-wait", daemon=True)
waiter.start()
waiter.join(seconds)
print(
    "[mldeploy debug] "
    + ("debugger attached" if debugpy.is_client_connected() else f"no debugger within {seconds:g} s")
    + ": starting the scoring runtime",
    flush=True,
)
sys.argv = ["mldeploy_runtime"]
runpy.run_module("mldeploy_runtime", run_name="__main__", alter_sys=True)
