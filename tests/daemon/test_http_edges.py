"""Issue 9, findings 7, 8 and 11: the HTTP edges a hostile or merely real client reaches."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry

from symlinkd.daemon.http import HttpServer
from symlinkd.daemon.queue import ScanQueue, ScanRequest
from symlinkd.logs import configure_logging
from tests.daemon.http_rig import FARM, TOKEN, Rig, http_rig


@pytest.fixture
def rig() -> Iterator[Rig]:
    with http_rig() as made:
        yield made


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, json=True, level=logging.DEBUG)
    yield stream
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close sends RST


def _raw(port: int, request: bytes, *, timeout: float = 10) -> bytes:
    """Send ``request`` as is and read the answer until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and _complete(data):
                    break
        except TimeoutError:
            pass
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def _auth() -> dict[str, str]:
    return {"X-Api-Key": TOKEN}


# -- finding 8: HTTP edges ----------------------------------------------------------------------

@pytest.mark.parametrize("route", ["/api/v1/scan", "/webhook/sonarr", "/webhook/zurg"])
def test_deeply_nested_json_is_400_not_500(rig: Rig, route: str) -> None:
    for body in (b"[" * 60_000, b'{"paths": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
                 b"[" * 100 + b"]" * 100):
        answer = rig.client.post(route, content=body,
                                 headers={**_auth(), "Content-Type": "application/json"})
        assert answer.status_code == 400, (route, body[:20], answer.text)
    assert 'code="500"' not in rig.client.get("/metrics").text


def test_two_different_content_lengths_are_400(rig: Rig) -> None:
    body = b'{"path": "Shows/X"}'
    data = _raw(rig.port, b"POST /api/v1/scan HTTP/1.1\r\nHost: x\r\nX-Api-Key: "
                + TOKEN.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\nContent-Length: 5\r\n\r\n" + body)
    assert _status(data) == 400
    assert rig.take() is None
    # waitress's own answers are JSON and counted like the app's.
    assert "error" in json.loads(data.partition(b"\r\n\r\n")[2])
    assert 'symlinkd_http_requests_total{code="400",route="/api/v1/scan"} 1.0' in (
        rig.client.get("/metrics").text)


@pytest.mark.parametrize("route", ["/metrics", "/healthz", "/readyz"])
def test_head_is_served_wherever_get_is(rig: Rig, route: str) -> None:
    answer = rig.client.head(route)
    assert answer.status_code == 200
    assert answer.content == b""
    assert int(answer.headers["content-length"]) > 0
    assert rig.client.head("/webhook/sonarr").status_code == 405
    assert rig.client.get("/healthz").status_code == 200  # the connection is still in step


def test_a_client_gone_before_the_answer_is_debug_not_500(
    log_stream: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    entered = threading.Event()

    def slow() -> None:
        entered.set()
        time.sleep(0.5)  # the scrape times out meanwhile

    with http_rig(healthy=slow) as rig:
        for _ in range(3):
            entered.clear()
            sock = socket.create_connection(("127.0.0.1", rig.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert entered.wait(5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            sock.close()  # RST: gone for good
            time.sleep(0.8)
        text = rig.client.get("/metrics").text
    assert 'code="500"' not in text
    events = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    gone = [e for e in events if e["event"] == "client_disconnected"]
    assert gone and all(e["level"] == "debug" for e in gone)
    assert not [e for e in events if e["level"] in ("error", "critical")], events
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_only_structured_lines_reach_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True, level=logging.DEBUG)  # stderr, as the daemon runs
    try:
        with http_rig() as rig:
            for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                            b"POST /api/v1/scan HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"):
                _raw(rig.port, request, timeout=2)
            sock = socket.create_connection(("127.0.0.1", rig.port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            sock.close()
            time.sleep(0.3)
            assert rig.client.get("/healthz").status_code == 200
    finally:
        structlog.reset_defaults()
        for handler in list(logging.getLogger().handlers):
            logging.getLogger().removeHandler(handler)
    _, err = capfd.readouterr()
    for line in err.splitlines():
        if line.strip():
            json.loads(line)  # raises on a raw traceback or any unstructured line


def test_created_series_are_not_exported(rig: Rig) -> None:
    rig.client.get("/healthz")
    assert "_created" not in rig.client.get("/metrics").text


def test_an_idle_server_does_not_spin(rig: Rig) -> None:
    """The server's loop waits in poll() between events. It once polled with a zero timeout
    (waitress int()s ``asyncore_loop_timeout``: 0.2 -> 0) and kept a core busy on an idle
    daemon, slowing its passes threefold. CPU time of the whole process, a wide margin."""
    rig.client.get("/healthz")
    time.sleep(0.5)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    time.sleep(2.0)
    cpu = time.process_time() - cpu_before
    assert cpu < 0.5 * (time.monotonic() - wall_before), f"{cpu:.2f} s of CPU while idle"


# -- finding 7: bounded connections ---------------------------------------------------------

def test_connections_over_the_cap_get_503_promptly() -> None:
    with http_rig(connection_limit=8) as rig:
        idle = [socket.create_connection(("127.0.0.1", rig.port), timeout=5) for _ in range(8)]
        try:
            time.sleep(0.3)
            started = time.monotonic()
            data = _raw(rig.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            assert _status(data) == 503, data
            assert time.monotonic() - started < 2.0
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = _raw(rig.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            if _status(data) == 200:
                break
            time.sleep(0.1)
        assert _status(data) == 200
        assert 'symlinkd_http_requests_total{code="503",route="other"}' in (
            rig.client.get("/metrics").text)


def test_slow_clients_do_not_hold_the_workers() -> None:
    with http_rig(threads=2) as rig:
        slow = []
        try:
            for _ in range(20):  # ten times the worker threads, each half-way through a request
                sock = socket.create_connection(("127.0.0.1", rig.port), timeout=5)
                sock.sendall(b"POST /api/v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                             b"X-Api-Key: " + TOKEN.encode() + b"\r\n\r\n{\"pa")
                slow.append(sock)
            for _ in range(5):
                assert rig.client.get("/healthz", timeout=2).status_code == 200
        finally:
            for sock in slow:
                sock.close()


# -- finding 11: real clients ---------------------------------------------------------------

def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.mark.parametrize("user", ["", "sonarr", "svc user"])
def test_basic_auth_password_is_the_token(rig: Rig, user: str) -> None:
    payload = {"eventType": "Download", "series": {"path": f"{FARM}/Shows/X"}}
    answer = rig.client.post("/webhook/sonarr", json=payload, headers=_basic(user, TOKEN))
    assert answer.status_code == 202, answer.text
    assert rig.client.post("/webhook/sonarr", json={"eventType": "Test"},
                           auth=(user or "x", TOKEN)).status_code == 200


@pytest.mark.parametrize("header", [
    _basic("sonarr", "wrong")["Authorization"], _basic(TOKEN, "")["Authorization"],
    "Basic !!!notbase64", "Basic " + base64.b64encode(TOKEN.encode()).decode(),
    f"Bearer {TOKEN}", "Basic", "Basic " + base64.b64encode(b"u:\xff").decode(),
])
def test_basic_auth_with_a_wrong_password_is_401(rig: Rig, header: str) -> None:
    answer = rig.client.post("/webhook/radarr", json={"eventType": "Test"},
                             headers={"Authorization": header})
    assert answer.status_code == 401
    assert rig.take() is None


def test_zurg_json_names_keep_spaces_and_newlines(rig: Rig) -> None:
    names = ["__all__/Show S01 ", "__all__/Two\nLines", " __all__/Lead"]
    answer = rig.client.post("/webhook/zurg", json=names, headers=_auth())
    assert answer.status_code == 202, answer.text
    request = rig.take()
    assert request is not None
    refreshed = {d for _, d in request.refresh}
    assert "/m/zurg/__all__/Show S01 " in refreshed
    assert "/m/zurg/__all__/Two\nLines" in refreshed
    assert "/m/zurg/ __all__/Lead" in refreshed


def test_zurg_text_lines_keep_trailing_spaces(rig: Rig) -> None:
    answer = rig.client.post("/webhook/zurg", content=b"__all__/Show S01 \r\n__all__/B\x0bC\n",
                             headers={**_auth(), "Content-Type": "text/plain"})
    assert answer.status_code == 202
    request = rig.take()
    assert request is not None
    refreshed = {d for _, d in request.refresh}
    assert "/m/zurg/__all__/Show S01 " in refreshed
    assert "/m/zurg/__all__/B\x0bC" in refreshed  # one name: only \n ends a line


class _StuckQueue(ScanQueue):
    """``put`` of a large request blocks until released (a slow parse, made deterministic)."""

    def __init__(self) -> None:
        super().__init__(farm=FARM)
        self.entered = threading.Event()
        self.release = threading.Event()

    def put(self, request: ScanRequest) -> bool:
        if len(request.paths) > 100:
            self.entered.set()
            self.release.wait(10)
        return super().put(request)


def test_large_bodies_cannot_take_every_worker() -> None:
    queue = _StuckQueue()
    big = json.dumps({"paths": [f"Shows/Big/e{j}.mkv" for j in range(5000)]}).encode()
    with http_rig(queue=queue, threads=2) as rig:
        rig.settings[0] = replace(rig.settings[0], daemon=replace(
            rig.settings[0].daemon, max_body_bytes=1024 * 1024))
        first: list[int] = []
        sender = threading.Thread(target=lambda: first.append(
            rig.client.post("/api/v1/scan", content=big, headers=_auth()).status_code))
        sender.start()
        try:
            assert queue.entered.wait(10)
            started = time.monotonic()
            second = rig.client.post("/api/v1/scan", content=big, headers=_auth())
            assert second.status_code == 503 and second.headers["retry-after"]
            assert rig.client.get("/healthz").status_code == 200
            hook = rig.client.post("/webhook/sonarr", headers=_auth(), json={
                "eventType": "Download", "series": {"path": f"{FARM}/Shows/X"}})
            assert hook.status_code == 202
            assert time.monotonic() - started < 5
        finally:
            queue.release.set()
            sender.join(10)
        assert first == [202]


def _documented_zurg_hook() -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "daemon.md").read_text()
    start = text.index("#!/bin/sh\n# /app/symlinkd-update.sh")
    return text[start:text.index("```", start)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the documented hook needs curl")
def test_the_documented_zurg_hook_sends_names_exactly(rig: Rig, tmp_path: Path) -> None:
    script = tmp_path / "symlinkd-update.sh"
    script.write_text(_documented_zurg_hook())
    token = tmp_path / "token"
    token.write_text(TOKEN)
    names = ["__all__/Show S01 ", "__all__/Two\nLines", '__all__/Q"uo\\te', "__all__/T\tab",
             "__all__/Ends in newline\n", "__all__/Ünï €"]
    done = subprocess.run(
        ["sh", str(script), *names], capture_output=True, timeout=30, check=False,
        env={"PATH": os.environ["PATH"], "SYMLINKD_URL": f"http://127.0.0.1:{rig.port}",
             "SYMLINKD_TOKEN_FILE": str(token)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["queued"] == "full"
    request = rig.take()
    assert request is not None
    assert {d for _, d in request.refresh} >= {f"/m/zurg/{n}" for n in names}


def test_an_address_that_cannot_be_listened_on_is_an_oserror() -> None:
    with http_rig() as rig:
        for listen in (f"127.0.0.1:{rig.port}", "no-such-host.invalid:9090"):
            context = replace(rig.server._app.context, registry=CollectorRegistry())
            with pytest.raises(OSError):  # the daemon: "cannot listen on ...", exit 2
                HttpServer(listen, context)
