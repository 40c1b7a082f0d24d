"""The CLI as a user runs it: ``python -m symlinkd ...`` in a subprocess, on real temp farms
(the demo farm: plain folders as mounts, require_mountpoint false)."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from symlinkd import __version__
from symlinkd.cli import UsageError, main, scan_paths
from symlinkd.demo import build_demo_farm
from symlinkd.state import StateDB

MOVED = "Shows/ShowX/Season 01/ShowX.S01E03.1080p.mkv"
OLD = "Movies/Old Film (2001)/Old.Film.2001.mkv"
GONE = "Movies/Gone Girl (2014)/Gone.Girl.2014.mkv"
HEAT = "Movies/Heat (1995)/Heat.1995.2160p.mkv"


def cli(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None,
        ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "symlinkd", *args], capture_output=True, text=True,
        errors="surrogateescape", env=clean, cwd=cwd, timeout=120, check=False,
    )


def scan_json(*args: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    proc = cli("scan", "--json", *args, **kwargs)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def snapshot(farm: str) -> dict[str, tuple[Any, ...]]:
    """Every entry of the farm: links with target and mtime, files with size."""
    seen: dict[str, tuple[Any, ...]] = {}
    for top, dirs, files in os.walk(farm):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, farm)
            if os.path.islink(path):
                seen[rel] = ("link", os.readlink(path), st.st_mtime)
            elif os.path.isfile(path):
                seen[rel] = ("file", st.st_size)
    return seen


@pytest.fixture
def demo(tmp_path: Path) -> tuple[str, str]:
    """(config path, farm) of a fresh demo farm."""
    settings = build_demo_farm(str(tmp_path), time.time())
    return str(tmp_path / "symlinkd.yaml"), settings.farm


# --- basics -----------------------------------------------------------------------------------


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"symlinkd {__version__}"


def test_no_command_is_a_usage_error() -> None:
    proc = cli()
    assert proc.returncode == 2
    assert "scan" in proc.stderr and "demo" in proc.stderr


def test_unknown_option_is_a_usage_error() -> None:
    assert cli("scan", "--aply").returncode == 2


# --- config check -----------------------------------------------------------------------------


def test_config_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
farm: stream
mounts:
  - {name: zurg, path: /mnt/media/zurg}
  - {name: zurg, path: /mnt/media/stream/torbox}
policy: {max_age_days: -1, colour: red}
daemon: {listen: nope}
notify: {plex: {url: 'http://plex:32400', token_file: /does/not/exist}}
""")
    proc = cli("config", "check", "--config", str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("At '")]
    assert len(lines) == 6, proc.stderr
    assert f"6 configuration problems ({bad})" in proc.stderr
    for expected in (
        "At 'farm': 'stream' is a relative path",
        "At 'mounts[1].name': duplicate mount name 'zurg'",
        "At 'policy.max_age_days': -1 is less than the minimum of 0",
        "At 'policy.colour': unknown key",
        "At 'daemon.listen': 'nope' is not HOST:PORT",
        "At 'notify.plex.token_file': cannot read secret file /does/not/exist",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)


def test_config_check_env_problem_names_the_variable(tmp_path: Path) -> None:
    proc = cli("config", "check", env={"SYMLINKD_CONFIG": str(tmp_path / "none.yaml")})
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    proc = cli("config", "check", "--config", os.devnull,
               env={"SYMLINKD_POLICY__MAX_PRUNE": "many"})
    assert proc.returncode == 2
    assert ("At 'policy.max_prune': 'many' is not of type 'integer' "
            "(set by SYMLINKD_POLICY__MAX_PRUNE)") in proc.stderr


def test_config_check_prints_effective_config_without_secrets(tmp_path: Path) -> None:
    token = tmp_path / "plex-token"
    token.write_text("sup3r-s3cret-plex\n")
    config = tmp_path / "symlinkd.yaml"
    config.write_text(f"notify:\n  plex: {{url: 'http://plex:32400', token_file: {token}}}\n")
    proc = cli("config", "check", "--config", str(config),
               env={"SYMLINKD_NOTIFY__SONARR__URL": "http://sonarr:8989",
                    "SYMLINKD_NOTIFY__SONARR__API_KEY": "env-s3cret-sonarr",
                    "SYMLINKD_POLICY__MAX_AGE_DAYS": "30"})
    assert proc.returncode == 0, proc.stderr
    for secret in ("sup3r-s3cret-plex", "env-s3cret-sonarr"):
        assert secret not in proc.stdout and secret not in proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["notify"]["plex"]["token_file"] == str(token)  # by file, never by value
    assert "api_key" not in shown["notify"]["sonarr"]
    assert "# notify.sonarr.api_key: from SYMLINKD_NOTIFY__SONARR__API_KEY" in proc.stdout
    assert shown["policy"]["max_age_days"] == 30
    assert shown["farm"] == "/mnt/media/stream"


# --- scan on the demo farm --------------------------------------------------------------------


def test_dry_run_scan_reports_and_changes_nothing(demo: tuple[str, str]) -> None:
    config, farm = demo
    before = snapshot(farm)
    code, doc = scan_json("--config", config)
    assert code == 1
    assert snapshot(farm) == before
    assert doc["dry_run"] is True
    assert {m["name"]: m["state"] for m in doc["mounts"]} == {"zurg": "ok", "torbox": "ok"}
    assert doc["counts"]["dangling"] == 2
    assert doc["counts"]["loop"] == 2
    assert doc["counts"]["outside_mounts"] == 1
    assert doc["counts"]["not_symlink"] == 1
    links = {os.path.relpath(link["path"], farm): link for link in doc["links"]}
    assert links[MOVED]["action"] == "relink"
    assert links[MOVED]["new_target"].endswith(f"torbox/torrents/{MOVED}")
    assert links[OLD]["verdict"] == "ok" and links[OLD]["action"] == "prune"
    assert links[GONE]["action"] == "skip"  # dangling, not yet confirmed
    assert HEAT not in links
    assert doc["actions"]["relink"] == 1 and doc["actions"]["prune"] == 1


def test_text_report_on_a_pipe(demo: tuple[str, str]) -> None:
    config, _ = demo
    proc = cli("scan", "--config", config)
    assert proc.returncode == 1
    assert "(dry run; nothing changed)" in proc.stdout
    assert "With --apply, symlinkd would make 2 change(s):" in proc.stdout
    assert "relink Shows/ShowX/Season 01/ShowX.S01E03.1080p.mkv →" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour codes into a pipe
    assert "scanning" not in proc.stderr  # no progress line off a terminal


def _stderr_on_a_terminal(*args: str) -> tuple[int, bytes]:
    """Run the CLI with stderr on a pseudo-terminal (stdout stays a pipe); return what the
    terminal received."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    try:
        proc = subprocess.run([sys.executable, "-m", "symlinkd", *args], stdout=subprocess.PIPE,
                              stderr=follower, env=env, timeout=120, check=False)
    finally:
        os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    return proc.returncode, received


def test_progress_line_only_on_a_terminal_and_never_with_json(demo: tuple[str, str]) -> None:
    config, _ = demo
    code, terminal = _stderr_on_a_terminal("scan", "--config", config)
    assert code == 1
    assert b"scanning: 0 entries" in terminal  # first frame, before the walk
    assert re.search(rb"scanning: [1-9][0-9]* entries", terminal)  # the final count
    code, terminal = _stderr_on_a_terminal("scan", "--json", "--config", config)
    assert code == 1
    assert b"scanning" not in terminal


def test_apply_then_history_then_undo(demo: tuple[str, str], tmp_path: Path) -> None:
    config, farm = demo
    before = snapshot(farm)
    code, doc = scan_json("--config", config, "--apply", "--no-notify")
    assert code == 1
    run_id = doc["run_id"]
    assert doc["results"] == {"relink": {"done": 1}, "prune": {"done": 1}}
    moved = os.path.join(farm, MOVED)
    assert os.readlink(moved) == str(tmp_path / "torbox" / "torrents" / MOVED)
    assert os.path.isfile(moved)
    assert not os.path.lexists(os.path.join(farm, OLD))
    quarantined = [p for p in (tmp_path / "quarantine").rglob("*") if p.is_symlink()]
    assert [p.name for p in quarantined] == [os.path.basename(OLD)]

    code, again = scan_json("--config", config)
    assert again["counts"]["dangling"] == 1  # only the truly gone one is left
    assert again["actions"]["relink"] == 0 and again["actions"]["prune"] == 0

    proc = cli("history", "--json", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert run_id in proc.stdout

    proc = cli("undo", run_id, "--config", config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert snapshot(farm) == before


def test_quarantine_purge(demo: tuple[str, str], tmp_path: Path) -> None:
    config, _ = demo
    assert scan_json("--config", config, "--apply")[0] == 1
    quarantine = tmp_path / "quarantine"

    def quarantined() -> int:
        return sum(1 for p in quarantine.rglob("*") if p.is_symlink())

    assert quarantined() == 1
    proc = cli("quarantine", "purge", "--older-than", "0", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert "would delete" in proc.stdout
    assert quarantined() == 1
    proc = cli("quarantine", "purge", "--older-than", "0", "--apply", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert quarantined() == 0
    assert cli("quarantine", "purge", "--older-than", "-1", "--config", config).returncode == 2


def test_subtree_scan(demo: tuple[str, str]) -> None:
    config, farm = demo
    code, doc = scan_json("--config", config, "--all", "Movies/Heat (1995)")
    assert code == 0
    assert doc["kind"] == "subtree"
    assert [link["path"] for link in doc["links"]] == [os.path.join(farm, HEAT)]
    # relative to the current directory when that is inside the farm
    code, doc = scan_json("--config", config, "--all", "Heat (1995)",
                          cwd=os.path.join(farm, "Movies"))
    assert code == 0 and len(doc["links"]) == 1


@pytest.mark.parametrize(("paths", "cwd", "expected"), [
    (["Movies/Heat"], "/", ["/farm/Movies/Heat"]),
    (["Heat", "/farm/Shows/"], "/farm/Movies", ["/farm/Movies/Heat", "/farm/Shows"]),
    (["Heat"], "/nas/stream/Movies", ["/farm/Movies/Heat"]),  # cwd reported as the real path
    (["/nas/stream/Shows/A"], "/", ["/farm/Shows/A"]),
    (["../Shows", "Heat/../Heat"], "/farm/Movies", ["/farm/Shows", "/farm/Movies/Heat"]),
    (["a", "a/"], "/farm", ["/farm/a"]),
])
def test_scan_paths(paths: list[str], cwd: str, expected: list[str]) -> None:
    assert list(scan_paths(paths, "/farm", cwd, "/nas/stream")) == expected


@pytest.mark.parametrize("path", ["/elsewhere", "../..", "/farmer/x", "/nas"])
def test_scan_paths_outside_the_farm(path: str) -> None:
    with pytest.raises(UsageError):
        scan_paths([path], "/farm", "/farm/Movies", "/nas/stream")


def test_path_outside_the_farm_is_a_usage_error(demo: tuple[str, str], tmp_path: Path) -> None:
    config, _ = demo
    proc = cli("scan", "--config", config, str(tmp_path / "zurg"))
    assert proc.returncode == 2
    assert "is not inside the farm" in proc.stderr


def test_healthy_farm_exits_0(tmp_path: Path) -> None:
    media = tmp_path / "mnt" / "rd" / "__all__" / "Show"
    media.mkdir(parents=True)
    (media / "e1.mkv").write_bytes(b"x" * 10)
    farm = tmp_path / "farm" / "Show"
    farm.mkdir(parents=True)
    (farm / "e1.mkv").symlink_to(media / "e1.mkv")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "farm": str(tmp_path / "farm"), "state_dir": str(tmp_path / "state"),
        "mounts": [{"name": "rd", "path": str(tmp_path / "mnt" / "rd"), "anchor": "__all__",
                    "require_mountpoint": False}],
        "policy": {"quarantine_dir": str(tmp_path / "q")},
    }))
    code, doc = scan_json("--config", str(config))
    assert code == 0
    assert doc["counts"]["ok"] == 1 and doc["links"] == []
    assert cli("scan", "--config", str(config)).returncode == 0


def test_missing_farm_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"farm": str(tmp_path / "no-farm"),
                                      "state_dir": str(tmp_path / "state")}))
    proc = cli("scan", "--config", str(config))
    assert proc.returncode == 2
    assert f"the farm {tmp_path / 'no-farm'} is not a directory" in proc.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was created


def test_mount_down_exits_3_and_apply_changes_nothing(demo: tuple[str, str]) -> None:
    config, farm = demo
    data = yaml.safe_load(Path(config).read_text())
    data["mounts"][1]["require_mountpoint"] = True  # a plain folder is not a mount point
    Path(config).write_text(yaml.safe_dump(data))
    before = snapshot(farm)
    code, doc = scan_json("--config", config, "--apply")
    assert code == 3
    assert {m["name"]: m["state"] for m in doc["mounts"]}["torbox"] == "down"
    assert snapshot(farm) == before


def test_apply_is_refused_while_another_symlinkd_holds_the_state(demo: tuple[str, str]) -> None:
    config, farm = demo
    state_dir = yaml.safe_load(Path(config).read_text())["state_dir"]
    os.makedirs(state_dir, exist_ok=True)
    holder = StateDB(state_dir)
    holder.lock_exclusive()
    try:
        before = snapshot(farm)
        proc = cli("scan", "--config", config, "--apply")
        assert proc.returncode == 3
        assert "refused" in proc.stderr and "lock" in proc.stderr
        assert snapshot(farm) == before
    finally:
        holder.close()


def test_odd_names_survive_the_json_output(demo: tuple[str, str], tmp_path: Path) -> None:
    config, farm = demo
    odd = os.fsencode(farm) + b"/Movies/Bad\xff Name\nline2.mkv"
    os.symlink(os.fsencode(str(tmp_path / "zurg" / "__all__" / "missing.mkv")), odd)
    proc = subprocess.run(
        [sys.executable, "-m", "symlinkd", "scan", "--json", "--config", config],
        capture_output=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")},
    )
    doc = json.loads(proc.stdout.decode("utf-8"))  # strict UTF-8: no lone surrogates
    found = [link for link in doc["links"] if "path_b64" in link]
    assert len(found) == 1
    assert base64.b64decode(found[0]["path_b64"]) == odd
    assert found[0]["path"].endswith("Bad\\xff Name\nline2.mkv")
    text = cli("scan", "--config", config).stdout
    assert "Bad\\xff Name\\nline2.mkv" in text


# --- demo -------------------------------------------------------------------------------------


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    proc = cli("demo", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "(dry run; nothing changed)" in proc.stdout
    assert "symlinkd demo --apply" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_json_and_keep(tmp_path: Path) -> None:
    proc = cli("demo", "--json", "--keep", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 1, "the scan itself found problems; the demo still succeeded"
    assert doc["counts"]["dangling"] == 2
    kept = list(tmp_path.iterdir())
    assert len(kept) == 1 and (kept[0] / "symlinkd.yaml").is_file()
    # the kept farm scans again with its own config
    assert cli("scan", "--config", str(kept[0] / "symlinkd.yaml")).returncode == 1


def test_demo_apply_repairs(tmp_path: Path) -> None:
    proc = cli("demo", "--apply", "--json", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["results"] == {"relink": {"done": 1}, "prune": {"done": 1}}


# --- errors at the edge -----------------------------------------------------------------------


def test_environment_error_is_one_line_exit_4(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    (tmp_path / "farm").mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "farm": str(tmp_path / "farm"), "state_dir": str(blocker),
        "mounts": [{"name": "rd", "path": str(tmp_path / "rd"), "require_mountpoint": False}],
    }))
    proc = cli("scan", "--config", str(config))
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--debug" in proc.stderr
    assert "Traceback" in cli("scan", "--debug", "--config", str(config)).stderr


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                             ) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("symlinkd.cli.load_settings", interrupted)
    assert main(["config", "check"]) == 130
    assert "interrupted" in capsys.readouterr().err
