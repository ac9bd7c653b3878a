#!/usr/bin/env bash
# xmr — one entry point that sets up what it needs (a .venv beside this file) and then runs.
#
#   bash xmr.sh lab                       JupyterLab on the notebooks (start with 00_getting_started)
#   bash xmr.sh notebooks [RUN ARGS]      every notebook end to end (default profile) -> runs/<timestamp>/
#   bash xmr.sh test [PYTEST ARGS]        the whole test suite (unit tests + every notebook in the smoke profile)
#   bash xmr.sh xmr ARGS                  the xmr command (xmr run / sweep / scorecard / assets / list)
#   bash xmr.sh python ARGS               the venv's python (e.g. bash xmr.sh python -m data_scripts list)
#   bash xmr.sh setup                     only create / update .venv
#
# Environment: XMR_PYTHON (interpreter to build the venv with; default: python3.12, python3.11 or python3 >= 3.11),
# XMR_VENV (default .venv), XMR_TORCH_SPEC (override the torch/torchvision pins, e.g. "torch torchvision").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${XMR_VENV:-.venv}"

pick_python() {
  if [ -n "${XMR_PYTHON:-}" ]; then echo "$XMR_PYTHON"; return; fi
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
      echo "$c"; return
    fi
  done
  echo "xmr: needs Python 3.11 or 3.12 (set XMR_PYTHON=/path/to/python)" >&2
  exit 1
}

torch_spec() {
  # One pinned install path for torch. On Linux x86_64 these exact wheels work with torchvision
  # (the CPU-only torch 2.13.0 wheel makes torchvision fail to import: "operator torchvision::nms does not exist").
  if [ -n "${XMR_TORCH_SPEC:-}" ]; then echo "$XMR_TORCH_SPEC"; return; fi
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) echo "torch==2.14.1 torchvision==0.29.1" ;;
    Linux-aarch64) echo "torch==2.9.1 torchvision==0.24.1" ;;
    *) echo "torch torchvision" ;;
  esac
}

setup() {
  local py stamp
  if [ ! -x "$VENV/bin/python" ]; then
    py="$(pick_python)"
    echo "xmr: creating $VENV with $("$py" --version 2>&1)"
    "$py" -m venv "$VENV"
  fi
  stamp="$(cat pyproject.toml xmr.sh | sha256sum | cut -c1-16)"
  if [ -f "$VENV/.xmr-installed" ] && [ "$(cat "$VENV/.xmr-installed")" = "$stamp" ]; then
    return 0
  fi
  echo "xmr: installing into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
    # shellcheck disable=SC2046
    "$VENV/bin/python" -m pip install -q $(torch_spec)
  fi
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  # one kernel: the environment's own "python3" (ipykernel installs it); drop the "xmr" duplicate of older setups
  "$VENV/bin/python" -m jupyter kernelspec remove -y xmr >/dev/null 2>&1 || true
  "$VENV/bin/python" -m xmr_lib assets --install-wordnet
  echo "$stamp" > "$VENV/.xmr-installed"
  echo "xmr: environment ready ($VENV)"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  notebooks|run) setup; exec "$VENV/bin/python" -m xmr_lib run "$@" ;;
  lab) setup; exec "$VENV/bin/python" -m jupyter lab notebooks "$@" ;;
  python) setup; exec "$VENV/bin/python" "$@" ;;
  xmr) setup; exec "$VENV/bin/xmr" "$@" ;;
  help|-h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' ;;
  *) echo "xmr.sh: unknown command '$cmd'" >&2; sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
