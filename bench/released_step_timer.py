"""Run the released DynaBERT `run_glue.py` unchanged and record when each optimizer step ends.

Executed by `bench/step_time_vs_released.py` with the RELEASED code's own interpreter (its venv) and
the released folder as the working directory; it imports nothing from this project. The only hook is a
global optimizer post-step hook (torch's `register_optimizer_step_post_hook`): it stamps the time of
every `optimizer.step()` and, after `--stop-after` steps, ends the run by raising (nothing of the
training math is touched). Times go to the JSON file named by `--times-out`.

    cd ../shared/reference/official-dynabert && <venv>/bin/python <repo>/bench/released_step_timer.py \\
        --times-out /tmp/t.json --stop-after 21 --threads 2 -- <run_glue.py arguments>
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


class StopTiming(Exception):
    """Raised from the step hook once enough steps were timed."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--times-out", required=True, help="JSON file for the step end times (s, perf_counter)")
    ap.add_argument("--stop-after", type=int, required=True, help="optimizer steps to run")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("run_glue_args", nargs=argparse.REMAINDER, help="arguments of run_glue.py (after --)")
    a = ap.parse_args()
    args = a.run_glue_args[1:] if a.run_glue_args[:1] == ["--"] else a.run_glue_args
    sys.path.insert(0, os.getcwd())  # the released folder: its vendored transformers shadows any installed one
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    torch.set_num_threads(a.threads)
    import run_glue

    stamps: list[float] = []

    def stamp(optimizer, *_):
        stamps.append(time.perf_counter())
        if len(stamps) >= a.stop_after:
            raise StopTiming

    register_optimizer_step_post_hook(stamp)
    sys.argv = ["run_glue.py", *args]
    t0 = time.perf_counter()
    try:
        run_glue.main()
    except StopTiming:
        pass
    with open(a.times_out, "w") as f:
        json.dump({"start": t0, "step_ends": stamps}, f)
    if len(stamps) < a.stop_after:
        print(f"the released run ended after {len(stamps)} of {a.stop_after} steps", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
