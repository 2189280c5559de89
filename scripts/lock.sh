#!/usr/bin/env bash
# Regenerate requirements.lock (run it as `make lock`): one pinned version of every package `make setup` installs,
# the project's dependencies with its dev and ray extras and everything they pull in (torch 2.14.1's CUDA wheels,
# nvidia-*, cuda-*, triton, included), plus the pip that installs them and the setuptools that builds the editable
# project. pip-compile resolves with this machine's pip configuration (`pip config list`: the local wheels and
# indexes that hold torch), for the Python that runs it (python3.11, as .venv).
#
# Pins already in the lock are kept unless pyproject.toml now needs another; arguments go to pip-compile:
#   make lock ARGS=--upgrade                      everything to the newest version allowed
#   make lock ARGS='--upgrade-package numpy'      one package
# pip-tools lives in a venv of its own (.cache/lock-tools), never in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
TOOLS=${LOCK_TOOLS:-.cache/lock-tools}
PIP_TOOLS="pip==26.3 pip-tools==7.7.0"
if [ "$(cat "$TOOLS/.versions" 2>/dev/null)" != "$PIP_TOOLS" ]; then
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    # shellcheck disable=SC2086
    "$TOOLS/bin/python" -m pip install -q $PIP_TOOLS 2>&1 | { grep -v "WARNING: Location 'file:" || true; }
    echo "$PIP_TOOLS" > "$TOOLS/.versions"
fi
# The installer and the build backend come in through stdin ("via -r -" in the lock); the rest from pyproject.toml.
# pip's notes that a local index has no page for a package are dropped from what is shown.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
printf 'pip\nsetuptools>=68\n' | CUSTOM_COMPILE_COMMAND="make lock" "$TOOLS/bin/pip-compile" --quiet \
    --extra dev --extra ray --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
    --output-file requirements.lock "$@" pyproject.toml - >"$log" 2>&1 || status=$?
grep -v "WARNING: Location 'file:" "$log" >&2 || true
exit "$status"
