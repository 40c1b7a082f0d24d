"""Config loading: the sample file, env overrides, secret files, and every mistake reported at
once with its key path (borgmatic style)."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from symlinkd import config as config_module
from symlinkd.config import config_schema, effective_config, load_settings
from symlinkd.errors import ConfigError
from symlinkd.settings import Secret, Settings

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "symlinkd.yaml"
ENV_EXAMPLE = REPO / "config" / "symlinkd.env.example"


def write(tmp_path: Path, text: str, name: str = "symlinkd.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems(path: str | None, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env or {})
    return caught.value.problems


# --- defaults and the sample file -------------------------------------------------------------


def test_missing_default_file_means_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent.yaml"))
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.farm == "/mnt/media/stream"
    assert [(m.name, m.path, m.anchor) for m in settings.mounts] == [
        ("zurg", "/mnt/media/zurg", "__all__"), ("torbox", "/mnt/media/torbox", "torrents"),
    ]


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert problems(missing) == [("", f"config file {missing} does not exist")]
    # named through the environment counts as explicit too
    assert problems(None, {"SYMLINKD_CONFIG": missing}) == [
        ("", f"config file {missing} does not exist")
    ]


def test_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "farm: /srv/farm\n")
    assert load_settings(None, {"SYMLINKD_CONFIG": path}).farm == "/srv/farm"


def test_sample_config_loads_and_documents_the_defaults() -> None:
    assert load_settings(str(SAMPLE), {}) == Settings()


def _settings_keys(cls: type[Any], prefix: str = "") -> set[str]:
    """Every leaf key of Settings, with secrets under their *_file name."""
    out: set[str] = set()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        name, key = field.name, f"{prefix}{field.name}"
        nested = [a for a in (hints[name], *typing.get_args(hints[name]))
                  if dataclasses.is_dataclass(a)]
        if nested:
            out |= _settings_keys(nested[0], key + ".")  # type: ignore[arg-type]
        elif name in ("token", "api_key", "webhook_token"):
            out.add(f"{key}_file")
        else:
            out.add(key)
    return out


def _schema_keys(node: dict[str, Any], root: dict[str, Any], prefix: str = "") -> set[str]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].removeprefix("#/$defs/")]
    if node.get("type") == "array" and "items" in node and "$ref" in node["items"]:
        return _schema_keys(node["items"], root, prefix)
    props = node.get("properties")
    if not props:
        return {prefix.rstrip(".")}
    out: set[str] = set()
    for name, child in props.items():
        if name in ("token", "api_key", "webhook_token"):  # inline, env-only twin of *_file
            continue
        out |= _schema_keys(child, root, f"{prefix}{name}.")
    return out


def test_schema_covers_every_settings_field_and_nothing_else() -> None:
    schema = config_schema()
    assert _schema_keys(schema, schema) == _settings_keys(Settings)


def test_sample_config_mentions_every_settings_field() -> None:
    text = SAMPLE.read_text(encoding="utf-8")
    written = set(re.findall(r"^[ #-]*([a-z_]+):", text, flags=re.M))
    missing = {key for key in _settings_keys(Settings) if key.rsplit(".", 1)[-1] not in written}
    assert missing == set()


def test_env_example_loads(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value.replace("/secrets/", f"{tmp_path}/")
    for secret in ("plex-token", "sonarr-key", "webhook-token"):
        (tmp_path / secret).write_text(f"{secret}-value\n")
    env["SYMLINKD_CONFIG"] = str(SAMPLE)
    settings = load_settings(None, env)
    assert settings.mounts[0].rc_url == "http://127.0.0.1:5572"
    assert settings.notify.plex is not None
    assert settings.notify.plex.token.reveal() == "plex-token-value"


# --- one mistake at a time --------------------------------------------------------------------

MISTAKES = [
    ("farm: media/stream\n", "farm", "'media/stream' is a relative path"),
    ("farmm: /x\n", "farmm", "unknown key (did you mean 'farm'?)"),
    ("policy: {max_age_days: -1}\n", "policy.max_age_days", "-1 is less than the minimum of 0"),
    ("policy: {max_prune: lots}\n", "policy.max_prune", "'lots' is not of type 'integer'"),
    ("policy: {max_prune_ratio: 1.5}\n", "policy.max_prune_ratio", "greater than the maximum"),
    ("policy: {relink: maybe}\n", "policy.relink", "is not of type 'boolean'"),
    ("policy: {quarantine_dir: q}\n", "policy.quarantine_dir", "relative path"),
    ("policy: {quarantine_dir: /mnt/media/stream/.q}\n", "policy.quarantine_dir",
     "overlaps the farm"),
    ("state_dir: /mnt/media/zurg/state\n", "state_dir", "inside mount 'zurg'"),
    ("policy: {exclude: [/abs/**]}\n", "policy.exclude[0]", "globs are relative to the farm"),
    ("timeouts: {probe_seconds: 0}\n", "timeouts.probe_seconds", "less than or equal to"),
    ("farm: /mnt/media/zurg/stream\n", "farm", "lies inside mount 'zurg'"),
    ("farm: /mnt/media\nmounts: [{name: a, path: /mnt/media/zurg}]\n", "mounts[0].path",
     "lies inside the farm"),
    ("mounts: [{name: a, path: /m/a}, {name: a, path: /m/b}]\n", "mounts[1].name",
     "duplicate mount name 'a'"),
    ("mounts: [{name: a, path: /m/a}, {name: b, path: /m/a/}]\n", "mounts[1].path",
     "duplicate mount path /m/a"),
    ("mounts: [{name: a, path: m/a}]\n", "mounts[0].path", "relative path"),
    ("mounts: [{name: a}]\n", "mounts[0]", "'path' is required"),
    ("mounts: []\n", "mounts", "should be non-empty"),
    ("mounts: [{name: 'a b', path: /m/a}]\n", "mounts[0].name", "may hold only"),
    ("mounts: [{name: a, path: /m/a, anchor: ../x}]\n", "mounts[0].anchor", "without '..'"),
    ("mounts: [{name: a, path: /m/a, rc_url: 'localhost:5572'}]\n", "mounts[0].rc_url",
     "not an http(s) URL"),
    ("mounts: [{name: a, path: /m/a, colour: red}]\n", "mounts[0].colour", "unknown key"),
    ("notify: {plex: {url: 'ftp://plex', token_file: /etc/hostname}}\n", "notify.plex.url",
     "not an http(s) URL"),
    ("notify: {plex: {url: 'http://plex:99999', token_file: /etc/hostname}}\n",
     "notify.plex.url", "not an http(s) URL"),
    ("notify: {sonarr: {url: 'http://sonarr:8989'}}\n", "notify.sonarr",
     "api_key_file is required (or set SYMLINKD_NOTIFY__SONARR__API_KEY)"),
    ("notify: {plex: {url: 'http://plex', token_file: /etc/hostname, path_map: {data: /x}}}\n",
     "notify.plex.path_map['data']", "absolute path prefixes"),
    ("notify: {emby: {url: 'http://emby'}}\n", "notify.emby", "unknown key"),
    ("daemon: {watch: sometimes}\n", "daemon.watch",
     "'sometimes' is not one of ['auto', 'inotify', 'poll', 'off']"),
    ("daemon: {listen: nope}\n", "daemon.listen", "is not HOST:PORT"),
    ("daemon: {listen: '0.0.0.0:70000'}\n", "daemon.listen", "is not HOST:PORT"),
    ("daemon: {scan_cron: '61 * * * *'}\n", "daemon.scan_cron", "is not a crontab line"),
    ("daemon: {webhook_token_file: relative/token}\n", "daemon.webhook_token_file",
     "relative path"),
]


@pytest.mark.parametrize(("text", "key", "message"), MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_is_reported_with_its_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1, found
    assert found[0][0] == key
    assert message in found[0][1]


def test_five_mistakes_give_five_messages(tmp_path: Path) -> None:
    path = write(tmp_path, """\
farm: relative/farm
mounts:
  - {name: zurg, path: /mnt/media/zurg, anchor: __all__}
  - {name: zurg, path: /mnt/media/torbox, anchor: torrents}
policy:
  max_age_days: -1
  colour: blue
daemon:
  watch: sometimes
""")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    keys = [key for key, _ in caught.value.problems]
    assert sorted(keys) == sorted(
        ["farm", "mounts[1].name", "policy.max_age_days", "policy.colour", "daemon.watch"]
    )
    text = str(caught.value)
    assert "At 'policy.max_age_days': -1 is less than the minimum of 0" in text
    assert "At 'farm': 'relative/farm' is a relative path" in text


@pytest.mark.parametrize(("text", "fragment"), [
    ("farm: [unclosed\n", "is not valid YAML: line 2"),
    ("- farm\n- mounts\n", "must hold a mapping of keys"),
    ("farm: /a\nfarm: /b\n", "duplicate key 'farm'"),
])
def test_unreadable_documents(tmp_path: Path, text: str, fragment: str) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert fragment in found[0][1]


def test_broken_file_and_bad_env_are_reported_together(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "farm: [unclosed\n"), {"SYMLINKD_POLICY__MAX_PRUNE": "x"})
    assert [key for key, _ in found] == ["", "policy.max_prune"]


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing here\n"), {}) == Settings()


def test_section_with_everything_commented_out_means_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "notify:\n  # plex: {url: http://plex:32400}\ndaemon:\npolicy:\n")
    assert load_settings(path, {}) == Settings()


def test_paths_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "farm: /srv//farm/\nmounts: [{name: a, path: /m/a/}]\n")
    settings = load_settings(path, {})
    assert settings.farm == "/srv/farm"
    assert settings.mounts[0].path == "/m/a"


def test_sibling_with_common_prefix_is_not_inside(tmp_path: Path) -> None:
    path = write(tmp_path, "farm: /mnt/media/zurg2\n")
    assert load_settings(path, {}).farm == "/mnt/media/zurg2"


@pytest.mark.parametrize("listen", ["0.0.0.0:9090", "127.0.0.1:0", "[::]:9090", "localhost:80",
                                    "symlinkd.media.svc:9090"])
def test_good_listen_addresses(tmp_path: Path, listen: str) -> None:
    path = write(tmp_path, f"daemon: {{listen: '{listen}'}}\n")
    assert load_settings(path, {}).daemon.listen == listen


@pytest.mark.parametrize("listen", ["9090", ":9090", "[::1]", "1.2.3:80", "host:port", "[x]:1"])
def test_bad_listen_addresses(tmp_path: Path, listen: str) -> None:
    assert problems(write(tmp_path, f"daemon: {{listen: '{listen}'}}\n"))[0][0] == "daemon.listen"


# --- environment ------------------------------------------------------------------------------


def test_env_overrides_nested_keys_with_yaml_values(tmp_path: Path) -> None:
    path = write(tmp_path, "policy: {max_age_days: 60}\n")
    settings = load_settings(path, {
        "SYMLINKD_POLICY__MAX_AGE_DAYS": "30",
        "SYMLINKD_POLICY__PRUNE_LOOPS": "true",
        "SYMLINKD_POLICY__EXCLUDE": "[Kids/**, 'Docs/*']",
        "SYMLINKD_FARM": "/srv/stream",
        "HOME": "/root",
    })
    assert settings.policy.max_age_days == 30.0
    assert settings.policy.prune_loops is True
    assert settings.policy.exclude == ("Kids/**", "Docs/*")
    assert settings.farm == "/srv/stream"


def test_env_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "farm: /from/file\n")
    assert load_settings(path, {"SYMLINKD_FARM": "/from/env"}).farm == "/from/env"


def test_env_selects_mounts_by_name_or_index_and_appends(tmp_path: Path) -> None:
    settings = load_settings(None, {
        "SYMLINKD_CONFIG": write(tmp_path, "{}\n"),
        "SYMLINKD_MOUNTS__ZURG__RC_URL": "http://127.0.0.1:5572",
        "SYMLINKD_MOUNTS__1__REQUIRE_MOUNTPOINT": "false",
        "SYMLINKD_MOUNTS__2__NAME": "usenet",
        "SYMLINKD_MOUNTS__2__PATH": "/mnt/media/usenet",
    })
    assert [m.name for m in settings.mounts] == ["zurg", "torbox", "usenet"]
    assert settings.mounts[0].rc_url == "http://127.0.0.1:5572"
    assert settings.mounts[1].require_mountpoint is False


def test_env_string_keys_keep_their_text(tmp_path: Path) -> None:
    """A token like 0x1f or 1e5 is YAML for a number; where the schema wants a string the
    variable's text is taken as is."""
    settings = load_settings(None, {
        "SYMLINKD_CONFIG": write(tmp_path, "{}\n"),
        "SYMLINKD_NOTIFY__JELLYFIN__URL": "http://jellyfin:8096",
        "SYMLINKD_NOTIFY__JELLYFIN__TOKEN": "0x1f",
        "SYMLINKD_MOUNTS__ZURG__ANCHOR": "2024",
    })
    assert settings.notify.jellyfin is not None
    assert settings.notify.jellyfin.token.reveal() == "0x1f"
    assert settings.mounts[0].anchor == "2024"


def test_env_null_switches_a_section_off(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("t0ken")
    token = tmp_path / "tok"
    path = write(tmp_path, f"notify: {{plex: {{url: 'http://plex', token_file: {token}}}}}\n")
    assert load_settings(path, {}).notify.plex is not None
    assert load_settings(path, {"SYMLINKD_NOTIFY__PLEX": "null"}).notify.plex is None


def test_env_problems_name_the_variable() -> None:
    found = problems(None, {"SYMLINKD_CONFIG": "", "SYMLINKD_POLICY__MAX_AGE": "3",
                            "SYMLINKD_TIMEOUTS__OP_SECONDS": "soon"})
    assert ("policy.max_age", "unknown key (did you mean 'max_age_days'?) "
            "(set by SYMLINKD_POLICY__MAX_AGE)") in found
    assert ("timeouts.op_seconds", "'soon' is not of type 'number' "
            "(set by SYMLINKD_TIMEOUTS__OP_SECONDS)") in found


def test_env_unknown_mount_and_bad_yaml() -> None:
    found = problems(None, {"SYMLINKD_CONFIG": "", "SYMLINKD_MOUNTS__RD__PATH": "/x",
                            "SYMLINKD_POLICY__EXCLUDE": "[unclosed"})
    assert len(found) == 2
    by_key = dict(found)
    assert "SYMLINKD_MOUNTS__RD__PATH: no item 'rd'" in by_key["mounts"]
    assert "SYMLINKD_POLICY__EXCLUDE: value is not valid YAML" in by_key[""]


def test_kubernetes_service_links_and_process_switches_are_not_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent.yaml"))
    env = {
        "SYMLINKD_SERVICE_HOST": "10.0.0.7", "SYMLINKD_SERVICE_PORT": "9090",
        "SYMLINKD_SERVICE_PORT_METRICS": "9090", "SYMLINKD_PORT": "tcp://10.0.0.7:9090",
        "SYMLINKD_PORT_9090_TCP": "tcp://10.0.0.7:9090", "SYMLINKD_PORT_9090_TCP_PROTO": "tcp",
        "SYMLINKD_PORT_9090_TCP_PORT": "9090", "SYMLINKD_PORT_9090_TCP_ADDR": "10.0.0.7",
        "SYMLINKD_DEBUG": "1", "SYMLINKD_LOG_LEVEL": "debug",
    }
    assert load_settings(None, env) == Settings()


# --- secrets ----------------------------------------------------------------------------------


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "plex").write_text("  plex-secret-123\n")
    (tmp_path / "sonarr").write_text("sonarr-key-456\n")
    (tmp_path / "hook").write_text("hook-789")
    path = write(tmp_path, f"""\
notify:
  plex: {{url: 'http://plex:32400', token_file: {tmp_path}/plex, path_map: {{/mnt/media: /data}}}}
  sonarr: {{url: 'http://sonarr:8989', api_key_file: {tmp_path}/sonarr}}
daemon: {{webhook_token_file: {tmp_path}/hook}}
""")
    settings = load_settings(path, {})
    assert settings.notify.plex is not None and settings.notify.sonarr is not None
    assert settings.notify.plex.token == Secret("plex-secret-123")
    assert settings.notify.plex.path_map == (("/mnt/media", "/data"),)
    assert settings.notify.sonarr.api_key.reveal() == "sonarr-key-456"
    assert settings.daemon.webhook_token == Secret("hook-789")

    shown = yaml.safe_dump(effective_config(settings))
    for secret in ("plex-secret-123", "sonarr-key-456", "hook-789"):
        assert secret not in shown
    # by the file they came from, so the output loads back (issue 13)
    for name in ("plex", "sonarr", "hook"):
        assert f"_file: {tmp_path}/{name}\n" in shown
    assert "<redacted>" not in shown


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read secret file"),
    ("", "is empty"),
    ("\n  \n", "is empty"),
])
def test_bad_secret_files(tmp_path: Path, content: str | None, message: str) -> None:
    secret = tmp_path / "token"
    if content is not None:
        secret.write_text(content)
    path = write(tmp_path, f"notify: {{plex: {{url: 'http://plex', token_file: {secret}}}}}\n")
    found = problems(path)
    assert found[0][0] == "notify.plex.token_file"
    assert message in found[0][1]


def test_unreadable_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.mkdir()  # refused for root too: only regular files are read
    path = write(tmp_path, f"daemon: {{webhook_token_file: {secret}}}\n")
    assert problems(path) == [("daemon.webhook_token_file",
                               f"secret file {secret} is not a regular file (a directory)")]


def test_inline_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "notify: {plex: {url: 'http://plex', token: hunter2}}\n")
    found = problems(path)
    assert found[0][0] == "notify.plex.token"
    assert "not read from the config file" in found[0][1]
    assert "hunter2" not in str(found)


def test_inline_secret_from_env_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "notify: {radarr: {url: 'http://radarr:7878'}}\n")
    settings = load_settings(path, {"SYMLINKD_NOTIFY__RADARR__API_KEY": "k3y"})
    assert settings.notify.radarr is not None
    assert settings.notify.radarr.api_key.reveal() == "k3y"


def test_secret_file_and_value_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("k")
    path = write(tmp_path, f"notify: {{radarr: {{url: 'http://r', api_key_file: {tmp_path}/k}}}}\n")
    found = problems(path, {"SYMLINKD_NOTIFY__RADARR__API_KEY": "k3y"})
    assert found == [("notify.radarr", "set either api_key_file or api_key, not both")]


def test_url_passwords_are_redacted() -> None:
    settings = dataclasses.replace(Settings(), mounts=(
        dataclasses.replace(Settings().mounts[0], rc_url="http://admin:s3cret@127.0.0.1:5572"),
    ))
    shown = yaml.safe_dump(effective_config(settings))
    assert "s3cret" not in shown
    assert "http://admin:<redacted>@127.0.0.1:5572" in shown


def test_effective_config_loads_back(tmp_path: Path) -> None:
    """What `config check` prints is itself a valid config (secrets aside)."""
    settings = load_settings(str(SAMPLE), {"SYMLINKD_POLICY__MAX_PRUNE": "7"})
    path = write(tmp_path, yaml.safe_dump(effective_config(settings)), "effective.yaml")
    assert load_settings(path, {}) == settings
