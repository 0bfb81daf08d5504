"""A tqdm bar of the Spark tasks that run inside a ``with JobProgress(spark, "what"):`` block.

The block's jobs are tagged with a job group; a helper thread polls Spark's public status
tracker twice a second and shows completed / total tasks of the stages that ran.  Nothing is
shown (and no thread runs) when stderr is not a TTY or under CI, so logs and pipes stay clean.
"""
import logging
import os
import sys
import threading
import uuid

POLL_SECONDS = 0.5
log = logging.getLogger("sqlext.progress")


def enabled(stream=None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


class JobProgress:
    """Context manager; ``JobProgress(spark, desc, force=None)`` (force=True/False overrides the TTY test)."""

    def __init__(self, spark, desc: str, force: bool = None, stream=None):
        self.sc, self.desc, self.stream = spark.sparkContext, desc, stream or sys.stderr
        self.on = enabled(self.stream) if force is None else force
        self.group = f"sqlext-{uuid.uuid4().hex[:12]}"
        self._stop, self._thread, self._bar = threading.Event(), None, None

    def counts(self) -> tuple:
        """(completed, total) tasks over the submitted stages of this block's jobs so far."""
        tracker, done, total = self.sc.statusTracker(), 0, 0
        for job_id in tracker.getJobIdsForGroup(self.group):
            job = tracker.getJobInfo(job_id)
            for stage_id in (job.stageIds if job else []):
                stage = tracker.getStageInfo(stage_id)
                started = stage and (stage.numActiveTasks or stage.numCompletedTasks or stage.numFailedTasks)
                if started:  # pending and skipped stages don't count
                    done, total = done + stage.numCompletedTasks, total + stage.numTasks
        return done, total

    def _update(self) -> None:
        done, total = self.counts()
        if total != self._bar.total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._update()
            except Exception:  # a status glitch must never break the work being shown
                log.debug("progress poll failed", exc_info=True)

    def __enter__(self) -> "JobProgress":
        self.sc.setJobGroup(self.group, self.desc)
        if self.on:
            from tqdm import tqdm

            self._bar = tqdm(total=0, desc=self.desc, unit="task", file=self.stream, dynamic_ncols=True,
                             leave=True)
            self._thread = threading.Thread(target=self._poll, daemon=True, name="sqlext-progress")
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
            try:
                self._update()
            except Exception:
                pass
            self._bar.close()
        self.sc.setLocalProperty("spark.jobGroup.id", None)
        self.sc.setLocalProperty("spark.job.description", None)
