"""tqdm progress bars that show on a terminal and stay silent when stderr is not a TTY or under CI."""
import os
import sys
import threading

from tqdm import tqdm

POLL_SECONDS = 0.5


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(total: int, desc: str, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled(), file=sys.stderr, dynamic_ncols=True)


def follow(action, poll, total: int, desc: str, unit: str):
    """Run ``action()`` and return its result while a bar shows ``poll()`` (a count up to ``total``).

    ``action`` runs in a helper thread (a blocking Spark or BigDL call) and ``poll`` is called from
    this one every half second; without a terminal ``action`` simply runs here.
    """
    if not enabled():
        return action()
    outcome = {}

    def target():
        try:
            outcome["value"] = action()
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name=f"progress-{desc}")
    with bar(total, desc, unit) as progress:
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            try:
                done = min(total, int(poll()))
            except Exception:  # a failed poll only costs one bar update
                continue
            progress.update(done - progress.n)
        if "error" not in outcome:
            progress.update(total - progress.n)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")

