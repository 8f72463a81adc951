#!/usr/bin/env bash
# Create .venv and install gandit into it (a regular, non-editable install: the same wheel users
# get, with the rule files inside). `--test` adds the test tools (pytest, pytorch-fid).
# Offline-friendly: torch comes from the machine's package index; nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q ".${extra}"
.venv/bin/gandit --version
