"""The background job runner (app_support.jobs) on its own, without Streamlit."""

import threading
import time
from dataclasses import dataclass

from app_support.jobs import DONE, FAILED, STOPPED, get_job, jobs_of, start_job, wait
from lt_core.errors import LTError
from lt_core.events import Finished


@dataclass
class Progress:
    stage: str
    step: int
    total: int


def counting(n, delay=0.0):
    def work(should_stop):
        for i in range(n):
            if should_stop():
                return
            time.sleep(delay)
            yield Progress("count", i + 1, n)
        yield Finished(n)
    return work


def test_events_and_result_are_collected():
    job = start_job("owner-a", "count", "count to 5", counting(5))
    assert wait(job, 10)
    assert job.status == DONE and job.result == 5 and job.error is None
    assert [e.step for e in job.events()] == [1, 2, 3, 4, 5]
    assert get_job(job.id) is job


def test_jobs_run_in_their_own_thread():
    seen = []

    def work(should_stop):
        seen.append(threading.current_thread().name)
        yield Finished(None)

    job = start_job("owner-a", "thread", "which thread", work)
    assert wait(job, 10)
    assert seen and seen[0] != threading.current_thread().name and seen[0].startswith("lt-thread-")


def test_stop_keeps_what_was_done():
    job = start_job("owner-a", "count", "count slowly", counting(1000, delay=0.01))
    while len(job.events()) < 3:
        time.sleep(0.01)
    job.request_stop()
    assert wait(job, 10)
    assert job.status == STOPPED
    assert 3 <= len(job.events()) < 1000


def test_user_errors_become_the_job_message():
    def work(should_stop):
        yield Progress("x", 1, 2)
        raise LTError("the dataset is missing: put it in ./data")

    job = start_job("owner-a", "bad", "fails", work)
    assert wait(job, 10)
    assert job.status == FAILED and job.error == "the dataset is missing: put it in ./data"
    assert len(job.events()) == 1


def test_unexpected_errors_are_reported_not_raised():
    def work(should_stop):
        raise ZeroDivisionError("boom")
        yield

    job = start_job("owner-a", "bad", "crashes", work)
    assert wait(job, 10)
    assert job.status == FAILED and "unexpected error" in job.error and "boom" in job.error


def test_jobs_are_kept_per_owner():
    a = start_job("owner-x", "count", "x", counting(1))
    b = start_job("owner-y", "count", "y", counting(1))
    assert wait(a, 10) and wait(b, 10)
    assert a in jobs_of("owner-x") and b not in jobs_of("owner-x")
    assert get_job(a.id, owner="owner-y") is None
    assert get_job(a.id, owner="owner-x") is a
    assert get_job(None) is None and get_job("no-such-job") is None
