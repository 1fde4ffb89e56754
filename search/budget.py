"""The trial budget of a study shared by workers on any number of machines, kept in the database alone.

Budget: the study runs until it holds exactly `n_trials` COMPLETE trials. A worker may start a trial only
while COMPLETE + RUNNING < n_trials; FAIL trials never count, so a failed trial and its retry count once.

Claim (no lock on the count, the database is the only shared state): a worker asks a trial (it is RUNNING
from then on, committed), *then* counts COMPLETE + RUNNING again. Above `n_trials`, it puts the trial back
in the queue (WAITING, for a later or larger budget) and backs off for a random moment. Why this never
over-runs: take any moment with more than `n_trials` admitted trials alive (COMPLETE or RUNNING), and among
them the one whose count ran last. Every other one was committed RUNNING before its own count, so before
this one; and a trial never comes back from FAIL or COMPLETE, so this count saw all of them and itself:
more than `n_trials`, and it would have backed off. COMPLETE trials stay counted, so they never exceed
`n_trials`; workers stop only at `n_trials` COMPLETE, so they reach it. Two workers racing for the last
slot can both back off; the random back-off makes one of them win a later round. (Popping a queued trial
must itself be atomic: a server does it with SELECT ... FOR UPDATE, SQLite with `storage.queue_lock`.)

Dead workers: every admitted trial beats (Optuna's heartbeat, in the database with the server's clock);
any worker that looks fails a trial that stopped beating for the grace period, exactly once (the database
moves a trial to FAIL for one caller only), and `RetryStaleTrial` queues its parameters again. A worker
killed between ask and its first beat leaves a trial without beats: after `ORPHAN_SECONDS` it is failed
and retried the same way.
"""
from __future__ import annotations

import random
import time
import warnings
from datetime import datetime, timedelta

import optuna
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import get_heartbeat_thread  # Optuna's own heartbeat thread (as in optimize)
from optuna.trial import TrialState

from search.storage import RetryStaleTrial, queue_lock

COUNTED = (TrialState.COMPLETE, TrialState.RUNNING)
# User attr: the number of the trial whose heartbeat this worker records. A number, not a flag: Optuna's
# retry copies the user attrs of the failed trial, and the copy must not look like it beats.
BEATING_ATTR = "heartbeat_of"
# A RUNNING trial that never beat and started longer ago than this was killed between ask and first beat.
ORPHAN_SECONDS = 120.0


class StudyBudget:
    """Counting, claiming and recovering the trials of one study against `n_trials`.

    Args:
        storage: the study's RDB storage (counts bypass Optuna's per-process trial cache, so that every
            count is a fresh read of the database).
        study: the study, opened on `storage`.
        n_trials: COMPLETE trials the study must reach.
        seed: seed of the back-off jitter.
    """

    def __init__(self, storage: RDBStorage, study: optuna.Study, n_trials: int, *, seed: int = 0) -> None:
        if n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {n_trials}")
        self.storage, self.study, self.n_trials = storage, study, n_trials
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self._rng = random.Random(seed)

    def count(self, states: tuple[TrialState, ...] = COUNTED) -> int:
        """Trials of the study in `states`, read from the database now."""
        return self.storage.get_n_trials(self.study_id, state=states)

    def done(self) -> bool:
        """Whether the study holds `n_trials` COMPLETE trials."""
        return self.count((TrialState.COMPLETE,)) >= self.n_trials

    def claim(self) -> optuna.Trial | None:
        """A new (or queued) trial admitted within the budget, beating; None when there is no room now.

        None means: the budget is complete (`done()`), or trials of other workers fill it (wait: one may
        fail and be retried), or this worker lost a race for the last slot (retry after `backoff()`).
        """
        if self.count() >= self.n_trials:
            return None
        with queue_lock(self.storage.url), warnings.catch_warnings():
            # Optuna warns that a heartbeat storage is meant for optimize(); this loop beats itself.
            warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
            trial = self.study.ask()
        return trial if self.admit(trial) else None

    def admit(self, trial: optuna.Trial) -> bool:
        """Keep a just-asked (RUNNING) trial if the budget still has room, and start its heartbeat record.

        Returns:
            False when COMPLETE + RUNNING, counted after the trial was committed, exceeds `n_trials`: a
            concurrent worker took the slot, and the trial went back to the queue (WAITING).
        """
        if self.count() > self.n_trials:
            self.storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
            return False
        self.storage.record_heartbeat(trial._trial_id)  # before the marker: a marked trial always has a beat
        trial.set_user_attr(BEATING_ATTR, trial.number)
        return True

    def heartbeat(self, trial: optuna.Trial):
        """Context manager that records `trial`'s heartbeat every interval while its objective runs."""
        return get_heartbeat_thread(trial._trial_id, self.storage)

    def fail_stale(self) -> list[int]:
        """Fail (and queue again) trials of dead workers: no heartbeat for the grace period, or never beat.

        Returns:
            Numbers of the trials this call failed.
        """
        callback = self.storage.get_heartbeat_stale_trial_callback()
        log = callback.failed if isinstance(callback, RetryStaleTrial) else []
        before = len(log)
        with warnings.catch_warnings():  # experimental since Optuna 2.9, and what optimize() calls
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # no beat for the grace period: FAIL + callback
        now = datetime.now()
        for t in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            never_beat = t.user_attrs.get(BEATING_ATTR) != t.number
            if never_beat and t.datetime_start and now - t.datetime_start > timedelta(seconds=ORPHAN_SECONDS):
                try:
                    if not self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # another worker failed or finished it first
                if callback is None or not isinstance(callback, RetryStaleTrial):
                    log.append(t.number)
                if callback is not None:
                    callback(self.study, self.storage.get_trial(t._trial_id))
        return log[before:]

    def backoff(self, seconds: float = 1.0) -> None:
        """Sleep a random 10-100 % of `seconds`, so that workers that raced do not race again in step."""
        time.sleep(self._rng.uniform(0.1, 1.0) * seconds)
