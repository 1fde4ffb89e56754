"""The presets of `dynabert run`: overrides of the configuration's defaults (app/config/run_config.py), by option
name. Values are checked against their fields like a config file's (tests/test_run_options.py).
"""
from __future__ import annotations

from typing import Any

# Overrides of the defaults, preset by preset; docs/RECIPES.md names the figure that chose each one.
PRESETS: dict[str, dict[str, Any]] = {
    # The offline demo: minutes on 2 CPU cores, still a real front (every stage runs for real).
    # lr 1e-4, and stage 2 at 3e-4 with a hard-label term for 2 epochs: so few steps converge (docs/RECIPES.md).
    "quick": {"max_length": 64, "limit_train": 640, "lr": 1e-4, "teacher_epochs": 3.0, "stage1_epochs": 1.0,
              "stage2_epochs": 2.0, "stage2_lr": 3e-4, "hard_weight": 1.0,
              # fp32 eager and INT8 ONNX Runtime on one front: each more variant adds minutes of profiling (ONNX
              # exports) to the demo; docs/RECIPES.md "Deployment variants" has the timings
              "scenario": "cpu-eager-t2-b1-s64,cpu-ort-int8-t2-b1-s64",
              "n_random": 16, "n_heldout": 8, "n_trials": 80, "baselines": ("distilbert", "int8"),
              "baseline_steps": 30, "save_every": 20},
    # stage2_lr 2e-4 and a hard-label term in stage 2 only: each raised the SST-2 grid's mean accuracy at equal
    # steps (docs/RECIPES.md); checkpoints selected on the held-out slice of train.
    "standard": {"max_length": 128, "teacher_epochs": 3.0, "stage1_epochs": 2.0, "stage2_epochs": 2.0,
                 "stage2_lr": 2e-4, "stage2_hard_weight": 1.0, "select_best": "heldout", "n_trials": 300,
                 # the deployable front: fp32 and INT8, eager and ONNX Runtime (training dominates its hours)
                 "target": "cpu-t2-b1-s128", "precisions": ("fp32", "int8"), "runtimes": ("eager", "ort")},
    # Hyper-parameters of the paper (Hou et al. 2020, GLUE): lr 2e-5, batch 32, max length 128, importance
    # on dev; one epoch per distillation stage on TinyBERT-augmented data (needs mlm_checkpoint); the
    # released code keeps the checkpoint with the best sum of dev accuracies (scored every 50 steps).
    "paper": {"max_length": 128, "teacher_epochs": 3.0, "stage1_epochs": 1.0, "stage2_epochs": 1.0,
              "importance_split": "dev", "augment": 20, "teacher_width": "full", "select_best": "dev",
              "n_trials": 300},
    # The released code's own recipe, step for step (tests/test_official_parity.py): lr 2e-5 everywhere, teacher on
    # all of train, importance on dev (running gradient sums, file order, batch 8), batches padded to max length,
    # its AdamW eps, teacher at full width, no model selection. Its reference run (--data_aug with a copy of train)
    # shows every sentence twice per stage: 2 epochs here (SST-2: stage1_steps/stage2_steps 433 give its budget).
    "released": {"max_length": 64, "lr": 2e-5, "teacher_epochs": 3.0, "stage1_epochs": 2.0, "stage2_epochs": 2.0,
                 "importance_split": "dev", "select_best": "off", "teacher_width": "full", "extra_subnets": 0,
                 "augment": 0, "padding": "max_length", "adam_eps": "released", "subnet_forward": "separate",
                 "importance_grads": "cumulative", "importance_order": "file", "importance_batch_size": 8},
}
