"""Background jobs: long lt_core work runs in a thread while pages come and go.

A job wraps a generator of lt_core progress events. Its thread consumes the generator and appends
every event to the job; the generator's ``Finished`` event becomes ``job.result``. Pages keep
only the job id (in their session state) and read the job from the module-level registry, so a
transfer keeps running when its page is left and its progress is there on return; two browser
sessions hold different ids and never see each other's jobs.

Errors: an ``LTError`` ends the job with its message; any other exception ends it with a short
"unexpected error" message (the traceback goes to the server log). Either way the page keeps
working and whatever the generator had already produced (and saved) stays.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from lt_core.errors import LTError
from lt_core.events import Finished

log = logging.getLogger(__name__)

RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"
MAX_FINISHED_JOBS = 64


@dataclass
class Job:
    """One unit of background work and everything it has reported so far."""

    id: str
    kind: str
    title: str
    owner: str
    meta: dict = field(default_factory=dict)
    status: str = RUNNING
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _events: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def events(self) -> list:
        """A copy of the events so far (safe to read while the thread appends)."""
        with self._lock:
            return list(self._events)

    def last_event(self) -> Any:
        with self._lock:
            return self._events[-1] if self._events else None

    def request_stop(self) -> None:
        """Ask the work to end after its current step (it keeps every finished step)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _append(self, event: Any) -> None:
        with self._lock:
            self._events.append(event)

    def _finish(self, status: str, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            self.result, self.error, self.status, self.finished = result, error, status, time.time()


WorkFactory = Callable[[Callable[[], bool]], Iterator[Any]]

_JOBS: dict[str, Job] = {}
_REGISTRY_LOCK = threading.Lock()


def start_job(owner: str, kind: str, title: str, work: WorkFactory, meta: dict | None = None) -> Job:
    """Start ``work(should_stop)`` (a generator of events) in a daemon thread and register it."""
    job = Job(id=uuid.uuid4().hex, kind=kind, title=title, owner=owner, meta=dict(meta or {}))
    with _REGISTRY_LOCK:
        for old in [j for j in _JOBS.values() if j.owner == owner and j.kind == kind and not j.running]:
            del _JOBS[old.id]  # a session shows only its latest job of a kind: free the older results
        _prune()
        _JOBS[job.id] = job
    thread = threading.Thread(target=_run, args=(job, work), name=f"lt-{kind}-{job.id[:8]}", daemon=True)
    thread.start()
    return job


def _run(job: Job, work: WorkFactory) -> None:
    result = None
    try:
        for event in work(lambda: job.stop_requested):
            if isinstance(event, Finished):
                result = event.result
            else:
                job._append(event)
    except LTError as exc:
        job._finish(FAILED, error=str(exc))
        return
    except Exception as exc:  # a job must never take the page down: report it on the job instead
        log.exception("job %s (%s) failed", job.id, job.kind)
        job._finish(FAILED, error=f"unexpected error ({type(exc).__name__}: {exc}). "
                                  "The details are in the server log; earlier results are kept.")
        return
    job._finish(STOPPED if job.stop_requested else DONE, result=result)


def _prune() -> None:
    finished = sorted((j for j in _JOBS.values() if not j.running), key=lambda j: j.finished or 0)
    for job in finished[:max(0, len(finished) - MAX_FINISHED_JOBS)]:
        del _JOBS[job.id]


def get_job(job_id: str | None, owner: str | None = None) -> Job | None:
    """The job with this id (only if ``owner`` matches, when given), or None."""
    if not job_id:
        return None
    with _REGISTRY_LOCK:
        job = _JOBS.get(job_id)
    if job is None or (owner is not None and job.owner != owner):
        return None
    return job


def jobs_of(owner: str) -> list[Job]:
    """Every registered job of one session, oldest first."""
    with _REGISTRY_LOCK:
        return sorted((j for j in _JOBS.values() if j.owner == owner), key=lambda j: j.started)


def wait(job: Job, timeout: float) -> bool:
    """Block until the job ends or ``timeout`` seconds pass; True if it ended."""
    end = time.time() + timeout
    while job.running and time.time() < end:
        time.sleep(0.05)
    return not job.running
