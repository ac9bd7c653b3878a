#!/usr/bin/env bash
# Run notebooks in the `full` profile on a GPU machine that has torch but no package registry.
#
#   bash tools/gpu_full_run.sh OUT_DIR NN[:key=value,key=value] [NN[:...] ...]
#
# Missing pure-Python packages (papermill, ipykernel, ...) are installed from wheels in ./.whl (made here with
# `pip download --python-version 3.12 ...`, see CONTRIBUTING.md); the package itself is used from the checkout.
# Each notebook gets its own overrides after the colon (e.g. `03:dataset=shapes,n_train=3000`): the full profile's
# real datasets are used when `data_root` holds them, else the override names the embedded fallback.
# PER_NB_TIMEOUT (seconds, default 3600) bounds each notebook; metrics recorded up to then are kept.
# Writes OUT_DIR/<NN>.metrics.json, OUT_DIR/scorecard.md, OUT_DIR/executed.tar.gz and OUT_DIR/log.txt.
set -uo pipefail
out="$1"; shift
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps .whl/*.whl || echo "gpu_full_run: some wheels failed to install"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
runs="$(mktemp -d)"
for spec in "$@"; do
  nb="${spec%%:*}"; args=()
  if [[ "$spec" == *:* ]]; then
    IFS=',' read -ra kvs <<< "${spec#*:}"
    for kv in "${kvs[@]}"; do args+=(-p "$kv"); done
  fi
  echo "== notebook $nb ${args[*]:-}"
  start=$(date +%s)
  timeout "${PER_NB_TIMEOUT:-3600}" python3 -m xmr_lib run --profile full --only "$nb" "${args[@]}" --out "$runs/$nb" \
    || echo "gpu_full_run: notebook $nb failed or ran out of time (PER_NB_TIMEOUT=${PER_NB_TIMEOUT:-3600} s)"
  echo "== notebook $nb took $(( $(date +%s) - start )) s"
  for f in "$runs/$nb"/*/*.metrics.json; do [ -f "$f" ] && cp "$f" "$out/$nb.metrics.json"; done
  for f in "$runs/$nb"/*/scorecard.md; do [ -f "$f" ] && cat "$f" >> "$out/scorecard.md"; done
done
tar -czf "$out/executed.tar.gz" -C "$runs" . 2>/dev/null || true
ls -la "$out"
