"""Findings 1 (the config part) and 4 of issue 9: `config check` accepted a quarantine that
contains a mount or the state dir, a quarantine equal to the state dir, nested mounts, and a
quarantine reached through a symlink into the farm. The rule (symlinkd.config_paths) is judged
on configured and resolved paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from symlinkd import config_paths
from symlinkd.config import load_settings
from symlinkd.config_paths import Place, relation_problems, resolve
from symlinkd.errors import ConfigError

BASE = """\
farm: {farm}
state_dir: {state}
policy: {{quarantine_dir: {quarantine}}}
mounts:
  - {{name: zurg, path: {zurg}, require_mountpoint: false}}
  - {{name: torbox, path: {torbox}, require_mountpoint: false}}
"""
DEFAULTS = {"farm": "/mnt/media/stream", "state": "/config/symlinkd",
            "quarantine": "/config/symlinkd/quarantine", "zurg": "/mnt/media/zurg",
            "torbox": "/mnt/media/torbox"}


def check(tmp_path: Path, **paths: str) -> list[tuple[str, str]]:
    config = tmp_path / "c.yaml"
    config.write_text(BASE.format(**{**DEFAULTS, **paths}))
    try:
        load_settings(str(config), {})
    except ConfigError as exc:
        return exc.problems
    return []


UNSAFE = [
    # finding 1: the quarantine contains a mount / the state dir / is the state dir
    ({"quarantine": "/mnt/media"}, "policy.quarantine_dir",
     "/mnt/media contains mount 'zurg' (/mnt/media/zurg); `quarantine purge` deletes"),
    ({"quarantine": "/mnt/media/zurg"}, "policy.quarantine_dir", "lies inside mount 'zurg'"),
    ({"quarantine": "/config"}, "policy.quarantine_dir",
     "/config contains the state dir (/config/symlinkd); `quarantine purge` would delete"),
    ({"quarantine": "/config/symlinkd"}, "policy.quarantine_dir",
     "/config/symlinkd is the state dir; quarantined links need a folder of their own"),
    ({"quarantine": "/"}, "policy.quarantine_dir", "overlaps the farm"),
    # nested mounts
    ({"torbox": "/mnt/media/zurg/torbox"}, "mounts[1].path",
     "/mnt/media/zurg/torbox lies inside mount 'zurg' (/mnt/media/zurg); mounts must not nest"),
    ({"zurg": "/mnt/media/torbox/zurg"}, "mounts[0].path", "mounts must not nest"),
    # the state dir
    ({"state": "/mnt/media/zurg/state"}, "state_dir", "lies inside mount 'zurg'"),
    ({"state": "/mnt/media/stream/.state"}, "state_dir", "overlaps the farm"),
    ({"state": "/mnt"}, "state_dir", "overlaps the farm"),
    ({"state": "/srv", "zurg": "/srv/zurg"}, "state_dir", "contains mount 'zurg'"),
    # the farm
    ({"farm": "/mnt/media/zurg"}, "farm", "lies inside mount 'zurg'"),
    ({"farm": "/mnt/media/zurg/stream"}, "farm", "lies inside mount 'zurg'"),
    ({"farm": "/mnt"}, "mounts[0].path", "lies inside the farm"),
    ({"farm": "/config/symlinkd/quarantine/x"}, "policy.quarantine_dir", "overlaps the farm"),
]


@pytest.mark.parametrize(("paths", "key", "message"), UNSAFE,
                         ids=[f"{k}:{'/'.join(p.values())}" for p, k, _ in UNSAFE])
def test_unsafe_relations_are_refused(
    tmp_path: Path, paths: dict[str, str], key: str, message: str
) -> None:
    found = check(tmp_path, **paths)
    assert any(k == key and message in m for k, m in found), found


@pytest.mark.parametrize("paths", [
    {},  # the documented defaults: the quarantine inside the state dir
    {"quarantine": "/srv/quarantine"},
    {"zurg": "/mnt/media/zurg2", "torbox": "/mnt/media/zurg2x"},  # siblings, common prefix
    {"state": "/mnt/media/config/symlinkd", "quarantine": "/mnt/media/config/symlinkd/q"},
])
def test_safe_relations_pass(tmp_path: Path, paths: dict[str, str]) -> None:
    assert check(tmp_path, **paths) == []


def test_all_problems_at_once(tmp_path: Path) -> None:
    found = check(tmp_path, quarantine="/mnt/media", torbox="/mnt/media/zurg/t",
                  state="/mnt/media/zurg/s")
    keys = sorted({k for k, _ in found})
    assert keys == ["mounts[1].path", "policy.quarantine_dir", "state_dir"], found


# --- finding 4: through symlinks -------------------------------------------------------------


def _tree(tmp_path: Path) -> dict[str, str]:
    paths = {name: str(tmp_path / name) for name in ("farm", "state", "zurg", "torbox")}
    for path in paths.values():
        os.makedirs(path)
    paths["quarantine"] = str(tmp_path / "state" / "quarantine")
    return paths


def test_a_quarantine_through_a_symlink_into_the_farm_is_refused(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    (tmp_path / "q-link").symlink_to(tmp_path / "farm" / ".q")
    found = check(tmp_path, **{**paths, "quarantine": str(tmp_path / "q-link" / "sub")})
    assert found == [("policy.quarantine_dir",
                      f"{tmp_path}/q-link/sub (resolves to {tmp_path}/farm/.q/sub) overlaps "
                      f"the farm ({tmp_path}/farm); quarantined links must live outside it, "
                      "where media servers never look")]


def test_a_farm_that_is_a_symlink_is_compared_by_its_target(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    (tmp_path / "farm-link").symlink_to(tmp_path / "farm")
    found = check(tmp_path, **{**paths, "farm": str(tmp_path / "farm-link"),
                               "quarantine": str(tmp_path / "farm" / "q")})
    assert [k for k, _ in found] == ["policy.quarantine_dir"], found


def test_relative_and_chained_symlinks(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("farm/../zurg")
    found = check(tmp_path, **{**paths, "state": str(tmp_path / "a" / "state")})
    assert [k for k, _ in found] == ["state_dir"] and "inside mount 'zurg'" in found[0][1]


def test_a_symlink_loop_is_taken_as_written(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    (tmp_path / "loop").symlink_to("loop")
    assert check(tmp_path, **{**paths, "quarantine": str(tmp_path / "loop" / "q")}) == []


def test_resolution_never_looks_into_a_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An lstat on a hung FUSE mount would hang `config check` and a SIGHUP reload."""
    paths = _tree(tmp_path)
    seen: list[str] = []
    real_lstat = os.lstat

    def lstat(path: str) -> os.stat_result:
        seen.append(str(path))
        return real_lstat(path)

    monkeypatch.setattr(config_paths.os, "lstat", lstat)
    check(tmp_path, **{**paths, "state": paths["zurg"] + "/deep/state"})
    assert seen, "resolve did not run"
    assert not [p for p in seen if p.startswith((paths["zurg"], paths["torbox"]))], seen


# --- the pure rule ----------------------------------------------------------------------------


def test_resolve_matches_realpath_outside_mounts(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "l1").symlink_to("d/e")
    (tmp_path / "d" / "up").symlink_to("..")
    for rel in ("l1", "l1/x/y", "d/up/l1", "d/up/d/up/l1/../e", "missing/../d"):
        path = os.path.normpath(str(tmp_path / rel))
        assert resolve(path) == os.path.realpath(path), rel


def test_relation_of_quarantine_inside_state_is_fine() -> None:
    places = [Place(("state_dir",), "state", "/s", "/s"),
              Place(("policy", "quarantine_dir"), "quarantine", "/s/q", "/s/q")]
    assert list(relation_problems(places)) == []
