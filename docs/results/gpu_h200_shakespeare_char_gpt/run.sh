set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD RESEARCH_DATA_DIR=$PWD/.devdata PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('versions', jax.__version__, flax.__version__, optax.__version__, o.__version__, jax.devices())"
B=experiments/nlp/shakespeare_char.py:gpt
for args in "" "--config.precision=float32" "--config.steps_per_call=10" "--config.remat=block"; do
  echo "== benchmark $args"; timeout 100 python3 -m tools.benchmark --config=$B --steps=50 $args 2>&1 | tail -2 | tee -a $OUT/bench.jsonl
done
echo "== train bf16"; timeout 330 python3 -m tools.train --config=$B --workdir=/tmp/sc_gpt 2>&1 | tail -12
cp /tmp/sc_gpt/summary.json /tmp/sc_gpt/report.md /tmp/sc_gpt/metrics.jsonl /tmp/sc_gpt/config.json $OUT/ 2>/dev/null
echo "== pytest jax 0.11 (CPU of the box)"; timeout 100 python3 -m pytest -q -x -p no:cacheprovider tests/test_parallel_agreement.py 2>&1 | tail -4
