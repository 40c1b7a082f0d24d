"""Findings 5 and 6 of issue 9: values that passed validation and then crashed or hung a pass —
non-finite or absurd numbers, NUL bytes, a YAML alias bomb, a secret file that is a FIFO or
/dev/zero. Each is now one clear problem with its key path (exit 2, no traceback)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from symlinkd.config import load_settings
from symlinkd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env or {})
    return caught.value.problems


def _limit_memory() -> None:  # the failing version read /dev/zero until memory ran out
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def config_check(config: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    return subprocess.run(
        [sys.executable, "-m", "symlinkd", "config", "check", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
        preexec_fn=_limit_memory,
    )


# --- finding 5: numbers -----------------------------------------------------------------------

RANGES = [
    ("timeouts", "probe_seconds", "more than 0 up to 3600 seconds"),
    ("timeouts", "op_seconds", "more than 0 up to 3600 seconds"),
    ("policy", "max_age_days", "0 to 36500 days"),
    ("policy", "confirm_after_minutes", "0 to 525600 minutes"),
    ("daemon", "scan_interval_minutes", "more than 0 up to 10080 minutes"),
    ("daemon", "probe_interval_seconds", "0 to 86400 seconds"),
    ("daemon", "poll_interval_seconds", "more than 0 up to 3600 seconds"),
    ("daemon", "debounce_seconds", "0 to 3600 seconds"),
]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e+300", "1" + "0" * 40])
@pytest.mark.parametrize(("section", "key", "allowed"), RANGES,
                         ids=[f"{s}.{k}" for s, k, _ in RANGES])
def test_non_finite_or_huge_numbers_are_refused_with_the_range(
    tmp_path: Path, section: str, key: str, allowed: str, value: str
) -> None:
    found = problems(f"{section}: {{{key}: {value}}}\n", tmp_path)
    assert [k for k, _ in found] == [f"{section}.{key}"], found
    assert f"allowed: {allowed}" in found[0][1]


def test_notify_timeout_and_counts_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("tok3n")
    found = problems(f"""\
notify:
  plex: {{url: 'http://plex', token_file: {tmp_path}/t, timeout_seconds: .nan,
          max_paths_per_section: {10**30}}}
policy: {{max_prune: {10**30}, confirm_after_passes: {10**30}, breaker_min_links: {10**30}}}
daemon: {{max_body_bytes: {10**30}}}
""", tmp_path)
    keys = dict(found)
    assert set(keys) == {
        "notify.plex.timeout_seconds", "notify.plex.max_paths_per_section", "policy.max_prune",
        "policy.confirm_after_passes", "policy.breaker_min_links", "daemon.max_body_bytes",
    }
    assert "nan is not a finite number; allowed: more than 0 up to 600 seconds" in \
        keys["notify.plex.timeout_seconds"]
    assert all("allowed: " in m for m in keys.values())


def test_env_numbers_are_checked_the_same_way(tmp_path: Path) -> None:
    found = problems("{}\n", tmp_path, {"SYMLINKD_TIMEOUTS__PROBE_SECONDS": ".inf"})
    assert found == [("timeouts.probe_seconds",
                      "inf is not a finite number; allowed: more than 0 up to 3600 seconds "
                      "(set by SYMLINKD_TIMEOUTS__PROBE_SECONDS)")]


def test_the_range_is_named_for_ordinary_out_of_range_values_too(tmp_path: Path) -> None:
    found = problems("timeouts: {probe_seconds: 7200}\n", tmp_path)
    assert found == [("timeouts.probe_seconds", "7200 is greater than the maximum of 3600; "
                                                "allowed: more than 0 up to 3600 seconds")]


def test_sane_values_at_the_edges_load(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("timeouts: {probe_seconds: 3600, op_seconds: 0.001}\n"
                    "policy: {max_age_days: 0}\ndaemon: {probe_interval_seconds: 0}\n")
    settings = load_settings(str(path), {})
    assert settings.timeouts.probe_seconds == 3600


# --- finding 5: NUL bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ('farm: "/srv/fa\\0rm"\n', "farm"),
    ('state_dir: "/srv/st\\0ate"\n', "state_dir"),
    ('policy: {quarantine_dir: "/q\\0"}\n', "policy.quarantine_dir"),
    ('mounts: [{name: a, path: "/m/\\0a"}]\n', "mounts[0].path"),
    ('policy: {exclude: ["Kids\\0/**"]}\n', "policy.exclude[0]"),
    ('daemon: {webhook_token_file: "/s/\\0t"}\n', "daemon.webhook_token_file"),
])
def test_nul_bytes_are_refused(tmp_path: Path, text: str, key: str) -> None:
    found = problems(text, tmp_path)
    assert [k for k, _ in found] == [key], found
    assert "contains a NUL byte" in found[0][1]


def test_nul_in_the_farm_fails_config_check_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('farm: "/srv/fa\\0rm"\n')
    done = config_check(config)
    assert done.returncode == 2, done.stderr
    assert "At 'farm':" in done.stderr and "Traceback" not in done.stderr


# --- finding 5: YAML size and aliases ---------------------------------------------------------


def _alias_bomb(levels: int = 7, width: int = 9) -> str:
    lines = ["a0: &a0 [x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"farm: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_gives_one_short_message(tmp_path: Path) -> None:
    found = problems(_alias_bomb(), tmp_path)
    assert len(found) == 1, [m[:200] for _, m in found]
    assert "aliases expand to more than" in found[0][1]
    assert len(found[0][1]) < 400


def test_an_alias_bomb_in_an_env_value_too(tmp_path: Path) -> None:
    bomb = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + ["*a"] * 2000) + "]"
    found = problems("{}\n", tmp_path, {"SYMLINKD_POLICY__EXCLUDE": bomb})
    assert len(found) == 1 and len(found[0][1]) < 400, [m[:200] for _, m in found]
    assert "aliases expand to more than" in found[0][1]


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mounts:\n  - &m {name: a, path: /m/a, require_mountpoint: false}\n"
                    "  - {<<: *m, name: b, path: /m/b}\n")
    assert [m.name for m in load_settings(str(path), {}).mounts] == ["a", "b"]


def test_a_huge_config_file_is_refused(tmp_path: Path) -> None:
    found = problems("# padding\n" * 200_000 + "farm: /srv/farm\n", tmp_path)
    assert len(found) == 1 and "larger than 1 MiB" in found[0][1]


def test_a_long_message_is_cut(tmp_path: Path) -> None:
    found = problems("farm: [" + ", ".join(["xxxxxxxxxx"] * 5000) + "]\n", tmp_path)
    assert len(found) == 1 and len(found[0][1]) <= 1000


# --- finding 6: secret files and the config file that are not regular files --------------------


@pytest.mark.parametrize("key", ["notify.plex.token_file", "config"])
def test_a_fifo_does_not_block(tmp_path: Path, key: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    config = tmp_path / "c.yaml"
    config.write_text(f"notify: {{plex: {{url: 'http://plex', token_file: {fifo}}}}}\n")
    done = config_check(fifo if key == "config" else config, timeout=20)
    assert done.returncode == 2, done.stderr
    assert "is not a regular file (a FIFO)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("key", ["daemon.webhook_token_file", "config"])
def test_dev_zero_is_refused(tmp_path: Path, key: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("daemon: {webhook_token_file: /dev/zero}\n")
    done = config_check(Path("/dev/zero") if key == "config" else config, timeout=60)
    assert done.returncode == 2, done.stderr[-500:]
    assert "is not a regular file (a character device)" in done.stderr


def _kmsg_openable() -> bool:
    try:
        os.close(os.open("/proc/kmsg", os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _kmsg_openable(), reason="/proc/kmsg cannot be opened here (not root?)")
def test_a_regular_file_whose_read_blocks_does_not_block(tmp_path: Path) -> None:
    """/proc/kmsg stats as a regular file, yet a read waits for the next kernel message:
    config check hung there (O_NONBLOCK was cleared after fstat)."""
    config = tmp_path / "c.yaml"
    config.write_text("daemon: {webhook_token_file: /proc/kmsg}\n")
    done = config_check(config, timeout=20)  # was: TimeoutExpired
    assert "Traceback" not in done.stderr


def test_a_large_secret_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "token"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    found = problems(f"daemon: {{webhook_token_file: {big}}}\n", tmp_path)
    assert found == [("daemon.webhook_token_file",
                      f"secret file {big} is larger than 64 KiB; a token is a line of text")]


def test_a_secret_file_through_a_symlink_still_works(tmp_path: Path) -> None:
    """Kubernetes mounts Secret keys as symlinks (..data/token); those stay fine."""
    (tmp_path / "real").write_text("hook-t0ken\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    path = tmp_path / "c.yaml"
    path.write_text(f"daemon: {{webhook_token_file: {tmp_path}/link}}\n")
    token = load_settings(str(path), {}).daemon.webhook_token
    assert token is not None and token.reveal() == "hook-t0ken"


@pytest.mark.parametrize("content", [b"SECRETLINE1\nSECRETLINE2\n", b"SECRET\rX", b"SEC\x00RET",
                                     b"SEC\x1bRET", b"\xffSECRET", "S\u00cbCRET".encode()])
def test_a_secret_that_is_not_one_line_of_text_is_refused_unshown(
    tmp_path: Path, content: bytes
) -> None:
    """A token with a line break passed config check, then httpx refused it as a header and the
    report and the logs quoted it: "Illegal header value b'SECRETLINE1\\nSECRETLINE2'"; a
    non-ASCII one crashed every pass (UnicodeEncodeError building the HTTP client)."""
    token = tmp_path / "token"
    token.write_bytes(content)
    found = problems(f"notify: {{plex: {{url: 'http://plex', token_file: {token}}}}}\n", tmp_path)
    assert [k for k, _ in found] == ["notify.plex.token_file"], found
    shown = str(found).replace(str(tmp_path), "")
    assert not any(bit in shown for bit in ("SEC", "0x", "\\x")), found


def test_an_env_secret_with_a_line_break_is_refused_unshown(tmp_path: Path) -> None:
    env = {"SYMLINKD_NOTIFY__PLEX__TOKEN": "SECRETLINE1\nSECRETLINE2"}
    found = problems("notify: {plex: {url: 'http://plex'}}\n", tmp_path, env)
    assert [k for k, _ in found] == ["notify.plex.token"], found
    assert "SECRETLINE" not in str(found), found
