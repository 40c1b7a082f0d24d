"""Property-based tests of the config loader (issue 9): whatever YAML and SYMLINKD_* values
arrive, loading ends in Settings or a ConfigError — never another exception — every problem
carries a key path, and a secret never appears in an error or in `config check` output."""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symlinkd.cli import main
from symlinkd.config import config_schema, effective_config_text, load_settings
from symlinkd.errors import ConfigError

MARKER = "Zq9xSecretMarker"  # planted only where a secret goes; must never be printed
_PART = r"""(\[\d+\]|\['.*'\]|\[".*"\]|\.<redacted>)"""
KEY_PATH = re.compile(rf"^$|^([A-Za-z_]\w*|{_PART})(\.[A-Za-z_]\w*|{_PART})*$", re.S)


def _vocabulary(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                out.update(value)
            _vocabulary(value, out)
    return out


VOCAB = sorted(_vocabulary(config_schema(), set()))
URL_SECRETS = [
    f"http://user:{MARKER}@127.0.0.1:5572",
    f"http://{MARKER}@rclone:5572",
    f"http://plex:32400/?X-Plex-Token={MARKER}",
    f"sonarr:8989/api?apikey={MARKER}&x=1",
    f"ftp://u:{MARKER}@h",
]
SECRET_LIKE = [
    MARKER,
    *URL_SECRETS,
    f"{MARKER}: 1",  # YAML for {MARKER: 1} where a section is expected
    f"{{token: [{MARKER}], url: 'http://plex'}}",
    f"[{MARKER}, 2]",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**50), max_value=10**50),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["/", "/mnt/media", "/mnt/media/zurg", "/config/symlinkd", "relative/x",
                     "/a/\0b", "http://plex:32400", "0.0.0.0:9090", "*/5 * * * *", ".inf"]),
)
keys = st.one_of(st.sampled_from(VOCAB), st.text(min_size=1, max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)
documents = st.dictionaries(keys, values, max_size=8)

SECRET_KEYS = [
    ("notify", "plex", "token"), ("notify", "jellyfin", "token"), ("notify", "sonarr", "api_key"),
    ("daemon", "webhook_token"),
]
URL_KEYS = [("mounts", 0, "rc_url"), ("notify", "plex", "url"), ("notify", "radarr", "url")]
# A secret key may hold anything; a URL key only hides what looks like a credential in a URL
# (a bare token pasted into `url:` cannot be told from a typo, and is quoted back).
plantings = st.one_of(
    st.tuples(st.sampled_from(SECRET_KEYS), st.sampled_from(SECRET_LIKE)),
    st.tuples(st.sampled_from(URL_KEYS), st.sampled_from(URL_SECRETS)),
)
SECRET_ENV = ["SYMLINKD_NOTIFY__PLEX", "SYMLINKD_NOTIFY__PLEX__TOKEN", "SYMLINKD_NOTIFY",
              "SYMLINKD_DAEMON", "SYMLINKD_DAEMON__WEBHOOK_TOKEN",
              "SYMLINKD_NOTIFY__SONARR__API_KEY"]
URL_ENV = ["SYMLINKD_MOUNTS__0__RC_URL", "SYMLINKD_NOTIFY__RADARR__URL"]
secret_envs = st.one_of(
    st.dictionaries(st.sampled_from(SECRET_ENV), st.sampled_from(SECRET_LIKE), max_size=2),
    st.dictionaries(st.sampled_from(URL_ENV), st.sampled_from(URL_SECRETS), max_size=2),
)
env_names = st.one_of(
    st.sampled_from(["SYMLINKD_FARM", "SYMLINKD_TIMEOUTS__PROBE_SECONDS", "SYMLINKD_MOUNTS",
                     "SYMLINKD_POLICY__MAX_PRUNE", "SYMLINKD_MOUNTS__ZURG__PATH",
                     "SYMLINKD_MOUNTS__9__PATH", "SYMLINKD_POLICY", "SYMLINKD_DAEMON__LISTEN"]),
    st.from_regex(r"SYMLINKD_[A-Z_]{1,20}", fullmatch=True),
)
env_values = st.one_of(st.text(max_size=40).map(lambda t: t.replace("\0", "")),
                       values.map(lambda v: yaml.safe_dump(v, default_flow_style=True)))


def _plant(document: dict[str, Any], place: tuple[str | int, ...], secret: str) -> None:
    node: Any = document
    for part, nxt in pairwise(place):
        empty: Any = [{}] if isinstance(nxt, int) else {}
        if isinstance(node, dict):
            if not isinstance(node.get(part), type(empty)) or not node[part]:
                node[part] = empty
            node = node[part]
        else:  # a list: ``part`` is 0
            if not isinstance(node[0], dict):
                node[0] = {}
            node = node[0]
    node[place[-1]] = secret


def _check(text: str, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            loaded = load_settings(str(path), env)
        except ConfigError as exc:
            assert exc.problems, "a ConfigError without problems"
            for key, message in exc.problems:
                assert isinstance(message, str) and message
                assert KEY_PATH.match(key), key
            shown = str(exc)
        else:
            shown = effective_config_text(loaded)
    assert MARKER not in shown, shown


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(document=documents,
       planted=st.lists(plantings, max_size=3),
       env=st.dictionaries(env_names, env_values, max_size=3),
       secret_env=secret_envs)
def test_random_documents_and_env_never_crash_or_leak(
    document: dict[str, Any], planted: list[tuple[tuple[str | int, ...], str]],
    env: dict[str, str], secret_env: dict[str, str],
) -> None:
    for place, secret in planted:
        _plant(document, place, secret)
    _check(yaml.safe_dump(document, allow_unicode=True), {**env, **secret_env})


@settings(max_examples=100, deadline=None, database=None)
@given(text=st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    _check(text.replace("\ud800", ""), {})


@settings(max_examples=30, deadline=None, database=None)
@given(document=documents, secret_env=secret_envs)
def test_config_check_exits_0_or_2_without_a_traceback(
    document: dict[str, Any], secret_env: dict[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        env = {"SYMLINKD_CONFIG": str(path), **secret_env}
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                _environ(env):
            code = main(["config", "check"])
    assert code in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert MARKER not in out.getvalue() + err.getvalue()
    if code == 2:
        lines = err.getvalue().splitlines()
        assert re.match(r"symlinkd: \d+ configuration problems? \(", lines[0]), lines
        assert all(ln.startswith("  ") for ln in lines[1:])


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Any:
    import os  # noqa: PLC0415

    saved = {k: v for k, v in os.environ.items() if k.startswith("SYMLINKD_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(extra)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("SYMLINKD_")]:
            del os.environ[k]
        os.environ.update(saved)
