"""Mutation check of the safety-invariant tests: copy the tree, take out one invariant's code at
a time, run that invariant's tests and expect them to FAIL. Not collected by pytest.

    python tests/bench/check_invariant_tests.py            # every mutation
    python tests/bench/check_invariant_tests.py "4 " "6 "  # names containing these
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INV = "tests/fs/test_invariants.py"
CONTAIN = "tests/fs/test_containment.py"
GATE = (
    '        if state is None or not state.up:\n'
    '            health = state.health.value if state is not None else "unknown"\n'
    '            return Skip'
)
CONFIRM = (
    "    if passes >= policy.confirm_after_passes and minutes >= policy.confirm_after_minutes:"
)


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    edits: tuple[tuple[str, str], ...]
    tests: str


MUTATIONS = (
    Mutation("0 baseline: nothing taken out (must pass)", "symlinkd/planner.py", (), INV),
    Mutation("1 executor re-check", "symlinkd/executor.py",
             (("            if not self.mounts_ok(name):", "            if False:"),),
             f"{INV} -k inv1_executor"),
    Mutation("1 MountRecheck never re-probes", "symlinkd/executor.py",
             (("        if now - self._last >= self.interval:", "        if False:"),),
             f"{INV} -k recheck"),
    Mutation("1 planner mount gate", "symlinkd/planner.py",
             ((GATE, GATE.replace("if state is None or not state.up:", "if False:")),),
             f"{INV} -k inv1_planner"),
    Mutation("1 raise_if_unsafe mount check", "symlinkd/planner.py",
             (("                if state is None or not state.up:\n                    health",
               "                if False:\n                    health"),),
             f"{INV} -k inv1_planner"),
    Mutation("2 classifier: EIO/ESTALE/EACCES dangling", "symlinkd/classifier.py",
             (("    if code in _GONE:",
               "    if code in _GONE or code in (errno.EIO, errno.ESTALE, errno.EACCES):"),),
             f"{INV} -k inv2"),
    Mutation("2 planner: unreadable/down/hung as dangling", "symlinkd/planner.py",
             (("    if verdict is Verdict.DANGLING:\n        return _dangling",
               "    if verdict in (Verdict.DANGLING, Verdict.UNREADABLE, Verdict.MOUNT_DOWN,"
               " Verdict.MOUNT_HUNG):\n        return _dangling"),),
             f"{INV} -k inv2"),
    Mutation("3 breaker never trips", "symlinkd/classifier.py",
             (("and bad > ratio * n:", "and False:"),), f"{INV} -k inv3"),
    Mutation("3 planner ignores degraded", "symlinkd/planner.py",
             ((GATE, GATE.replace("if state is None or not state.up:", "if state is None:")),),
             f"{INV} -k inv3"),
    Mutation("4 no confirmation", "symlinkd/planner.py", ((CONFIRM, "    if True:"),),
             f"{INV} -k inv4"),
    Mutation("4 minutes ignored", "symlinkd/planner.py",
             ((CONFIRM, "    if passes >= policy.confirm_after_passes:"),), f"{INV} -k inv4"),
    Mutation("4 passes ignored", "symlinkd/planner.py",
             ((CONFIRM, "    if minutes >= policy.confirm_after_minutes:"),), f"{INV} -k inv4"),
    Mutation("5 max_prune", "symlinkd/planner.py",
             (("        if prunes > policy.max_prune:", "        if False:"),), f"{INV} -k inv5"),
    Mutation("5 max_prune_ratio", "symlinkd/planner.py",
             (("        if prunes > RATIO_FLOOR and judged", "        if False and judged"),),
             f"{INV} -k inv5"),
    Mutation("6 journal committed with the outcome", "symlinkd/journal.py",
             (("            seq = int(row[0])\n",
               "            seq = int(row[0])\n            self._jconn.execute('BEGIN')\n"),
              ("                (state.value, message, run_id, seq),\n            )\n",
               "                (state.value, message, run_id, seq),\n            )\n"
               "            if self._jconn.in_transaction:\n"
               "                self._jconn.execute('COMMIT')\n")),
             f"{INV} -k inv6"),
    Mutation("6 undo does not restore mtime", "symlinkd/linkops.py",
             (("            os.utime(path, ns=(atime, mtime), follow_symlinks=False)",
               "            pass"),),
             f"{INV} -k inv6"),
    Mutation("7 relink by unlink + symlink", "symlinkd/executor.py",
             (("            place_link(tmp, action.new_target, seen.st)\n"
               "            os.replace(tmp, path)",
               "            os.unlink(path)\n"
               "            place_link(path, action.new_target, seen.st)"),),
             f"{INV} -k inv7"),
    Mutation("8 no re-read before acting", "symlinkd/executor.py",
             (("            seen = self._reread(planned)",
               "            seen = _Seen(planned.judgement.facts.target or '',"
               " os.lstat(planned.path))"),),
             f"{INV} -k inv8"),
    Mutation("8 rmtree without the emptiness check", "symlinkd/executor.py",
             (("                if os.listdir(directory):\n                    break",
               "                if False:\n                    break"),
              ("os.rmdir(directory)  # ENOTEMPTY",
               "__import__('shutil').rmtree(directory)  # ENOTEMPTY")),
             f"{INV} -k inv8"),
    Mutation("8 every empty folder removed", "symlinkd/executor.py",
             (("                if os.listdir(directory):\n                    break",
               "                for w, _, _ in list(os.walk(self.farm, topdown=False)):\n"
               "                    if w != self.farm and not os.listdir(w):\n"
               "                        os.rmdir(w)\n"
               "                if os.path.exists(directory) and os.listdir(directory):\n"
               "                    break"),),
             f"{INV} -k inv8"),
    Mutation("10 the rule takes any real folder", "symlinkd/containment.py",
             (("        if not _inside(parent, root.path):", "        if False:"),),
             f"{CONTAIN} -k nothing_outside"),
    Mutation("10 undo trusts the journal", "symlinkd/undo.py",
             (("(why := journal_refusal(zone, e)) is not None", "False"),),
             f"{CONTAIN} -k undo_of_a_journal"),
    Mutation("10 recovery trusts the journal", "symlinkd/recovery.py",
             (("        if refused is not None:", "        if False:"),),
             f"{CONTAIN} -k forged_pending"),
    Mutation("11 purge deletes regular files", "symlinkd/journal_cmds.py",
             (("        if not stat.S_ISLNK(st.st_mode):", "        if False:"),
              ("        if self.apply:\n            try:\n                os.unlink(path)",
               "        if self.apply:\n            try:\n                os.unlink(path)"
               " if not stat.S_ISDIR(st.st_mode) else None")),
             f"{CONTAIN} -k journaled_run_folders"),
    Mutation("11 purge of any folder", "symlinkd/journal_cmds.py",
             (("        run = state.run(name) if RUN_ID.fullmatch(name) else None\n"
               "        if run is None:",
               "        run = state.run(name) if RUN_ID.fullmatch(name) else None\n"
               "        if run is None and False:"),
              ("        elif run.started < cutoff:", "        elif run is None or "
               "run.started < cutoff:")),
             f"{CONTAIN} -k journaled_run_folders"),
    Mutation("11 purge crosses devices", "symlinkd/journal_cmds.py",
             (("        if st.st_dev != self.dev:", "        if False:"),
              ("or st.st_dev != root_dev:", ":"),
              ("            self.zone.check(path, Area.QUARANTINE, under=self.run_folder)\n",
               "            pass\n")),
             f"{CONTAIN} -k device"),
)


def run(mutation: Mutation, tree: str) -> str:
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(SRC, tree, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"))
    path = os.path.join(tree, mutation.file)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for old, new in mutation.edits:
        if old not in text:
            return f"pattern not found in {mutation.file}: {old[:60]!r}"
        text = text.replace(old, new, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *mutation.tests.split()],
        cwd=tree, env={**os.environ, "PYTHONPATH": tree}, capture_output=True, text=True,
        check=False,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:]


def main() -> int:
    wanted = sys.argv[1:]
    tree = os.path.join(tempfile.gettempdir(), "symlinkd-mutant")
    missed = 0
    for mutation in MUTATIONS:
        if wanted and not any(w in mutation.name for w in wanted):
            continue
        last = run(mutation, tree)
        if not mutation.edits:
            ok = " passed" in last and " failed" not in last
            missed += not ok
            print(f"{mutation.name:45s} {'passes' if ok else 'BROKEN':10s} {last}")
            continue
        caught = " failed" in last
        missed += not caught
        print(f"{mutation.name:45s} {'caught' if caught else 'NOT CAUGHT':10s} {last}")
    shutil.rmtree(tree, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
