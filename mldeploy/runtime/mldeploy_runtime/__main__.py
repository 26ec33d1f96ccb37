"""``python -m mldeploy_runtime``: serve the scoring script (see the package docstring for settings)."""

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
