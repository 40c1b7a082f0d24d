"""A long-lived state handle (the daemon's) answers ``histories`` from memory after the first
read and keeps that memory exactly in step with what it writes (issue 12: re-read SQLite only
at start). The check: after every pass of a random sequence, the remembered histories equal
what a fresh handle reads from the file."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from symlinkd.model import EntryKind, Judgement, LinkFacts, MountHealth, MountState, Verdict
from symlinkd.state import StateDB

UP = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK)}
DOWN = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.DOWN, "gone")}
PATHS = [f"/farm/{i}.mkv" for i in range(8)]
VERDICTS = [Verdict.OK, Verdict.DANGLING, Verdict.MOUNT_DOWN, Verdict.LOOP, None]


def judged(path: str, verdict: Verdict, target: int) -> Judgement:
    facts = LinkFacts(path, EntryKind.SYMLINK, 1.0, f"/mnt/zurg/t{target}/{path[6:]}",
                      f"/mnt/zurg/t{target}/{path[6:]}", "zurg")
    return Judgement(facts, verdict, 1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_remembered_histories_equal_the_file(tmp_path_factory: object, seed: int) -> None:
    rnd = random.Random(seed)
    base = Path(tmp_path_factory.mktemp("state"))  # type: ignore[attr-defined]
    now = [1_800_000_000.0]
    db = StateDB(str(base), clock=lambda: now[0])
    try:
        for _ in range(6):
            js = []
            for path in PATHS:
                verdict = rnd.choice(VERDICTS)
                if verdict is not None:  # None: the link is not in this pass
                    js.append(judged(path, verdict, rnd.randrange(2)))
            mounts = rnd.choice([UP, UP, DOWN])
            remembered = db.histories(PATHS)  # what the planner reads, before the writes
            recorder = db.recorder()
            recorder.finish(js, full=rnd.random() < 0.5, mounts=mounts,
                            histories=remembered, saturate=rnd.choice([None, 2, 3]))
            now[0] += 60
            fresh = StateDB(str(base))
            try:
                assert db.histories(PATHS) == fresh.histories(PATHS)
            finally:
                fresh.close()
    finally:
        db.close()


def test_histories_are_read_from_the_file_once(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path), clock=lambda: 1_800_000_000.0)
    js = [judged(p, Verdict.DANGLING, 0) for p in PATHS]
    db.record_pass(js, full=True, mounts=UP)
    db.histories(PATHS)
    queries: list[str] = []
    db._conn.set_trace_callback(queries.append)
    again = db.histories(PATHS)
    assert [q for q in queries if "FROM links" in q] == []
    assert all(h.bad_passes == 1 for h in again.values())
    db.close()
