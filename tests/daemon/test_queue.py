"""The one queue: duplicates coalesce, one pass at a time, the worker survives a crashing pass."""

from __future__ import annotations

import posixpath
import threading

from symlinkd.daemon.queue import ScanQueue, ScanRequest, Worker
from symlinkd.model import PassReport


def _report(kind: str, run_id: str = "r") -> PassReport:
    return PassReport(run_id=run_id, kind=kind, apply=True, started=0.0)


def test_many_full_requests_become_one_pass() -> None:
    queue = ScanQueue()
    for source in ("start", "schedule", "api", "schedule"):
        queue.put(ScanRequest.full_pass(source))
    first = queue.get(timeout=1)
    assert first is not None and first.full
    assert first.source == "api,schedule,start"
    queue.done()
    assert queue.get(timeout=0.05) is None


def test_subtree_requests_merge_their_paths() -> None:
    queue = ScanQueue()
    queue.put(ScanRequest.subtree(["/farm/a", "/farm/b"], "watch"))
    queue.put(ScanRequest.subtree(["/farm/b", "/farm/c"], "sonarr:Download"))
    got = queue.get(timeout=1)
    assert got is not None and not got.full
    assert got.paths == {"/farm/a", "/farm/b", "/farm/c"}
    assert got.source == "sonarr:Download,watch"


def test_subtrees_run_before_a_pending_full_but_cannot_starve_it() -> None:
    queue = ScanQueue()
    queue.put(ScanRequest.full_pass("schedule"))
    queue.put(ScanRequest.subtree(["/farm/new"], "watch"))
    first = queue.get(timeout=1)
    assert first is not None and first.paths == {"/farm/new"}
    queue.done()
    queue.put(ScanRequest.subtree(["/farm/newer"], "watch"))
    second = queue.get(timeout=1)
    assert second is not None and second.full, "the full pass waited once; it goes next"
    queue.done()
    third = queue.get(timeout=1)
    assert third is not None and third.paths == {"/farm/newer"}


def test_refresh_only_request_keeps_its_directories() -> None:
    queue = ScanQueue()
    queue.put(ScanRequest.subtree([], "zurg", refresh=[("zurg", "/m/zurg/__all__/X")]))
    got = queue.get(timeout=1)
    assert got is not None and not got.full and not got.paths
    assert got.refresh == {("zurg", "/m/zurg/__all__/X")}


def test_closed_queue_refuses_work_and_wakes_the_worker() -> None:
    queue = ScanQueue()
    woke = threading.Event()

    def wait() -> None:
        assert queue.get() is None
        woke.set()

    thread = threading.Thread(target=wait)
    thread.start()
    queue.close()
    assert woke.wait(5)
    assert queue.put(ScanRequest.full_pass("api")) is False


def test_worker_runs_one_at_a_time_and_survives_a_crash() -> None:
    queue = ScanQueue()
    running = 0
    most = 0
    lock = threading.Lock()
    seen: list[ScanRequest] = []
    release = threading.Event()
    began = threading.Event()

    def run(request: ScanRequest) -> PassReport:
        nonlocal running, most
        began.set()
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1
        seen.append(request)
        if request.source == "boom":
            raise RuntimeError("scanner bug")
        return _report("full" if request.full else "subtree", run_id=f"run-{len(seen)}")

    reports: list[PassReport] = []
    worker = Worker(queue, run, clock=lambda: 42.0, on_report=reports.append)
    worker.start()
    queue.put(ScanRequest.full_pass("boom"))
    assert began.wait(5)
    # While "boom" waits on release, these pile up and merge into one subtree pass.
    queue.put(ScanRequest.subtree(["/f/a"], "watch"))
    queue.put(ScanRequest.subtree(["/f/b"], "watch"))
    release.set()
    assert queue.wait_idle(10)
    assert worker.alive()
    assert most == 1
    assert seen[0].source == "boom"
    assert any(r.paths == {"/f/a", "/f/b"} for r in seen)
    assert worker.last is not None and not worker.last.crashed
    assert [r.kind for r in reports] == ["subtree"]

    queue.put(ScanRequest.full_pass("boom"))
    assert queue.wait_idle(10)
    assert worker.last is not None and worker.last.crashed
    assert "scanner bug" in worker.last.error
    queue.close()
    assert worker.join(5)


# -- issue 9, finding 7: pending work stays bounded -----------------------------------------

def _covered(path: str, pending: frozenset[str]) -> bool:
    """``path`` or one of its ancestors is pending."""
    while path not in pending:
        parent = posixpath.dirname(path)
        if parent == path:
            return False
        path = parent
    return True


def test_a_flood_of_paths_coalesces_to_parents_and_stays_bounded() -> None:
    queue = ScanQueue(farm="/farm", max_paths=1000)
    sent: list[str] = []
    for i in range(50):
        batch = [f"/farm/Shows/S{i:02d}/Season {j % 10}/e{j}.mkv" for j in range(4000)]
        sent += batch
        assert queue.put(ScanRequest.subtree(batch, "api"))
        full, pending = queue.pending()
        assert pending <= 1000
    full, pending = queue.pending()
    assert not full
    got = queue.get(timeout=1)
    assert got is not None and not got.full
    assert len(got.paths) <= 1000
    assert all(_covered(p, got.paths) for p in sent)  # nothing asked for is lost
    assert all(p.startswith("/farm/") for p in got.paths)


def test_past_what_parents_can_hold_the_flood_becomes_one_full_pass() -> None:
    queue = ScanQueue(farm="/farm", max_paths=100)
    for i in range(5):
        queue.put(ScanRequest.subtree([f"/farm/T{i}-{j}/x" for j in range(1000)], "api"))
        assert queue.pending()[1] <= 100
    assert queue.pending() == (True, 0)
    got = queue.get(timeout=1)
    assert got is not None and got.full and "api" in got.source


def test_without_a_farm_root_an_overflow_is_a_full_pass() -> None:
    queue = ScanQueue(max_paths=10)
    queue.put(ScanRequest.subtree([f"/f/a/{j}" for j in range(11)], "watch"))
    assert queue.pending() == (True, 0)


def test_refresh_directories_stay_bounded() -> None:
    queue = ScanQueue(farm="/farm", max_refresh=100)
    for i in range(20):
        queue.put(ScanRequest.subtree([], "zurg", refresh=[
            ("zurg", f"/m/zurg/__all__/T{i}-{j}") for j in range(100)]))
    got = queue.get(timeout=1)
    assert got is not None
    assert 0 < len(got.refresh) <= 100
    assert ("zurg", "/m/zurg/__all__") in got.refresh


def test_the_farm_root_itself_never_coalesces_out_of_the_farm() -> None:
    queue = ScanQueue(farm="/farm", max_paths=2)
    queue.put(ScanRequest.subtree(["/farm", "/farm/a/b", "/farm/c/d"], "api"))
    full, paths = queue.pending()
    assert full or paths <= 2
    got = queue.get(timeout=1)
    assert got is not None
    assert got.full or all(p == "/farm" or p.startswith("/farm/") for p in got.paths)


def test_the_deepest_paths_climb_first() -> None:
    queue = ScanQueue(farm="/farm", max_paths=100)
    queue.put(ScanRequest.subtree(["/farm/Movies/Heat"], "sonarr"))
    queue.put(ScanRequest.subtree([f"/farm/Shows/X/S{j % 5}/e{j}.mkv" for j in range(500)], "api"))
    got = queue.get(timeout=1)
    assert got is not None
    assert got.paths == {"/farm/Movies/Heat", *(f"/farm/Shows/X/S{k}" for k in range(5))}
