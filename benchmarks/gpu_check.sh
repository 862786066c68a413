#!/bin/bash
# benchmarks/gpu_check.py on a GPU machine, from the repository root:
#
#     bash benchmarks/gpu_check.sh [gpu_check.py options]
#
# Keras and its pure-Python dependencies come from .whl/ when it is there (a
# machine without them: `python3 -m pip download --no-deps --only-binary=:all:
# --python-version 3.12 ... -d .whl keras==<requirements.txt's pin> namex optree`,
# docs/PAPER_SCALE.md), installed into /tmp/site. The log and the throughput
# file go to $OUT when it is set, else benchmarks/logs/, named
# <date>-<gpu>-gpu_check.log and <date>-<gpu>-gpu_check-throughput.yaml.
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | sed 's/NVIDIA //' \
      | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
exec python3 benchmarks/gpu_check.py --out "${OUT:-benchmarks/logs}" --name "$(date +%F)-${gpu:-gpu}-gpu_check" "$@"
