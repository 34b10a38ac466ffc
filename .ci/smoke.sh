#!/usr/bin/env bash
# Smoke test of an installed instdecay (the minimum versions): the report, datasets.load_dataset on the shipped
# reference, and a leaderboard of the example submission. Run from the repository root with the venv's python.
set -euo pipefail
python="$1"
work=$(mktemp -d)
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg HF_DATASETS_CACHE="$work/hf-cache"
root=$(pwd)
(cd "$work" && "$python" -m instdecay.cli report --n-boot 100 > report.log)
"$python" - "$root/reference/sst2-cpu" <<'PY'
import sys
from datasets import load_dataset
for config in ("sst2", "sst2_instances", "runs"):
    ds = load_dataset(sys.argv[1], config)
    assert all(len(split) for split in ds.values()), config
print("load_dataset: every config loads")
PY
(cd "$work" && "$python" -m instdecay.cli leaderboard build --submissions "$root/examples" --out site --n-boot 50 > board.log)
test -s "$work/site/index.html"
echo "smoke test passed with: $("$python" -m pip freeze | grep -i -E '^(numpy|scipy|pandas|pyarrow|datasets|huggingface.hub|matplotlib)==' | tr '\n' ' ')"
rm -rf "$work"
