"""Finding 3 of issue 9: secrets were echoed — a URL's ``user:pass@`` or ``?apikey=`` in a config
error, in ``config check`` output and in the daemon's reload log; a wrong-typed env value for a
secret-bearing key was quoted back. One rule (symlinkd.redact) now covers all of them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog
import yaml

from symlinkd.config import effective_config, load_settings
from symlinkd.errors import ConfigError
from symlinkd.logs import configure_logging
from symlinkd.redact import MASK, redact_text

SECRET = "s3cr3tVALUE42"


@pytest.mark.parametrize("text", [
    f"http://admin:{SECRET}@127.0.0.1:5572",
    f"http://{SECRET}@rclone:5572/",
    f"http://plex:32400/library/sections?X-Plex-Token={SECRET}",
    f"http://plex:32400/?x-plex-token={SECRET}&a=1",
    f"http://sonarr:8989/api/v3?apikey={SECRET}",
    f"http://sonarr:8989/api/v3?foo=1&API_KEY={SECRET}#frag",
    f"https://h/?password={SECRET}",
    f"https://h/?access_token={SECRET};other=1",
    f"'not an http(s) URL: ftp://u:{SECRET}@host' (e.g. http://plex:32400)",
    f"token={SECRET}",
    # an unencoded '@' in the password: URL parsers (urllib, httpx) split userinfo at the last
    # '@', so this is a valid URL whose password is "p4ss@{SECRET}" (was: '@s3cr3t...' shown)
    f"http://user:p4ss@{SECRET}@plex:32400/?a=b",
    f"http://p4ss@{SECRET}@plex:32400",
])
def test_the_rule_hides_userinfo_and_credential_parameters(text: str) -> None:
    out = redact_text(text)
    assert SECRET not in out
    assert MASK in out


def test_the_rule_keeps_what_is_not_a_secret() -> None:
    text = "http://admin:{MASK}@h:1/x?section=2&path=/a%20b"
    plain = "http://plex:32400/library/sections/2/refresh?path=/data/Shows&force=1"
    assert redact_text(plain) == plain
    assert redact_text("http://admin:pw@h:1/x?section=2") == "http://admin:<redacted>@h:1/x?section=2"
    assert redact_text(text.replace("{MASK}", MASK)) == text.replace("{MASK}", MASK)
    # the user name stays: it says which account is meant
    assert "admin" in redact_text("http://admin:pw@h")


def _problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env or {})
    return str(caught.value) + repr(caught.value.problems)


@pytest.mark.parametrize("text", [
    f"mounts: [{{name: a, path: /m/a, rc_url: 'ftp://u:{SECRET}@h:5572'}}]\n",
    f"notify: {{plex: {{url: 'plex:32400/?X-Plex-Token={SECRET}', token_file: /etc/hostname}}}}\n",
    f"notify: {{sonarr: {{url: 'sonarr/api?apikey={SECRET}', api_key_file: /etc/hostname}}}}\n",
    f"notify: {{plex: {{url: 'http://plex', token: {SECRET}}}}}\n",
    f"notify: {{plex: {{url: 'http://plex', token: [{SECRET}]}}}}\n",
    f"notify: {{plex: {{url: 'http://plex', token: {{{SECRET}: 1}}}}}}\n",
    f"daemon: {{webhook_token: 12345{SECRET.count('x')}67890}}\n",
])
def test_config_errors_do_not_echo_secrets(tmp_path: Path, text: str) -> None:
    shown = _problems(tmp_path, text)
    assert SECRET not in shown
    assert "1234506789" not in shown


@pytest.mark.parametrize(("name", "key"), [
    ("SYMLINKD_NOTIFY__PLEX", "notify.plex"),
    ("SYMLINKD_NOTIFY", "notify"),
    ("SYMLINKD_DAEMON", "daemon"),
    ("SYMLINKD_NOTIFY__SONARR__API_KEY", "notify.sonarr"),
])
def test_a_wrong_typed_secret_bearing_value_is_described_by_its_type(
    tmp_path: Path, name: str, key: str
) -> None:
    shown = _problems(tmp_path, "{}\n", {name: SECRET, "SYMLINKD_POLICY__MAX_PRUNE": "x"})
    assert SECRET not in shown
    assert "a string of 13 characters" in shown or name.endswith("API_KEY")
    assert f"At '{key}" in shown


@pytest.mark.parametrize("value", [f"{SECRET}: 1", f"{{url: 'http://p', {SECRET}: x}}",
                                   f"[{SECRET}]"])
def test_an_env_value_parsed_into_a_section_does_not_echo_its_parts(
    tmp_path: Path, value: str
) -> None:
    """Found by the property test: `SYMLINKD_NOTIFY__PLEX='<token>: 1'` made the token a key
    and the unknown-key message showed it in the key path."""
    shown = _problems(tmp_path, "{}\n", {"SYMLINKD_NOTIFY__PLEX": value})
    assert SECRET not in shown
    assert "notify.plex" in shown


def test_config_check_output_hides_url_credentials(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"mounts: [{{name: a, path: /m/a, rc_url: 'http://u:{SECRET}@127.0.0.1:5572'}}]\n")
    settings = load_settings(str(path), {"SYMLINKD_NOTIFY__PLEX__URL":
                                         f"http://plex:32400/?X-Plex-Token={SECRET}",
                                         "SYMLINKD_NOTIFY__PLEX__TOKEN": "t0ken-value"})
    shown = yaml.safe_dump(effective_config(settings))
    assert SECRET not in shown and "t0ken-value" not in shown
    assert "http://u:<redacted>@127.0.0.1:5572" in shown


def test_logs_apply_the_same_rule_to_unknown_secrets() -> None:
    """A reload refused for a bad URL logs its problems: the rule applies there too, even for a
    secret the logger was not told about (the new config's secrets are not loaded yet)."""
    stream = io.StringIO()
    configure_logging(stream=stream, json=True)
    log = structlog.get_logger("symlinkd")
    log.error("new configuration refused; keeping the running one",
              problems=[f"mounts[0].rc_url: 'ftp://u:{SECRET}@h' is not an http(s) URL"],
              url=f"http://sonarr/api?apikey={SECRET}")
    text = stream.getvalue()
    assert SECRET not in text
    line = json.loads(text.splitlines()[-1])
    assert line["url"] == "http://sonarr/api?apikey=***"
