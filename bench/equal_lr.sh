#!/usr/bin/env bash
# DynaBERT vs separately trained students at the SAME learning rate, on any task, end to end:
# teacher -> rewire -> stage 1 (lr 2e-5) -> stage 2 (lr LR) -> the three baseline students (lr LR, same
# step budget, same model selection on the held-out train slice) -> results/<NAME>.{json,md} through bench/baselines_at_lr.py. Every step is a resumable CLI
# stage: rerun the same command after a crash and finished stages are skipped.
#
#   bash bench/equal_lr.sh ../shared/data/trec runs/trec_lr1e-4 trec_lr1e-4 [LR=1e-4] [STEPS=433] [MAXLEN=64] [SEED=42]
set -euo pipefail
cd "$(dirname "$0")/.."
task=$1 run=$2 name=$3 lr=${4:-1e-4} steps=${5:-433} maxlen=${6:-64} seed=${7:-42}
py=${PYTHON:-.venv/bin/python}
dyn() { echo "+ dynabert $*"; "$py" -m app.cli "$@"; }
done_stage() { [ -f "$run/$1/done.json" ]; }
resume() { if [ -d "$run/$1" ]; then echo --resume; fi; }  # continue an interrupted stage
common=(--run-dir "$run" --no-progress)
done_stage teacher || dyn train-teacher "${common[@]}" --task "$task" --max-length "$maxlen" --seed "$seed" $(resume teacher)
dyn rewire --run-dir "$run"  # a no-op once rewired
done_stage stage1 || dyn train-stage1 "${common[@]}" --max-steps "$steps" --select-best heldout $(resume stage1)
done_stage stage2 || dyn train-stage2 "${common[@]}" --max-steps "$steps" --lr "$lr" --select-best heldout $(resume stage2)
# the students get the same model selection as the DynaBERT stages (held-out train slice, every 50 steps)
student=(baselines --run-dir "$run" --no-progress --min-run-time 1 --scenario cpu-eager-t2-b1-s128
         --max-steps "$steps" --lr "$lr" --select-best heldout)
cmds=("${student[*]} --recipe distilbert --depth 3"
      "${student[*]} --recipe tinybert --depth 6 --width 0.5 --tinybert-budget split"
      "${student[*]} --recipe tinybert --depth 3 --width 0.5 --tinybert-budget per-phase")
report=()
for c in "${cmds[@]}"; do
  # shellcheck disable=SC2086
  dyn $c
  report+=(--command "dynabert $c")
done
"$py" -m bench.baselines_at_lr --students-run "$run" --dynabert-run "$run" --lr "$lr" --name "$name" \
  --task-name "${TASK_NAME:-$(basename "$task")}" "${report[@]}"
