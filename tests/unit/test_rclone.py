"""rclone rc client: wire format, and replay of responses recorded from real rclone 1.60.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from symlinkd.mounts import MountMonitor
from symlinkd.rclone import RcClient, RcError
from symlinkd.settings import MountSettings, Timeouts

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RECORDING = SHARED / "contracts" / "rclone-1.60.1-rc-responses.json"


# ---- wire format (no recording needed) -------------------------------------------------------

class Wire:
    """An httpx transport answering like rc and remembering every request."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        sent = json.loads(request.content or b"{}")
        body = self.body
        if body is None:
            body = {"result": {v: "OK" for k, v in sent.items() if k.startswith("dir")}}
        return httpx.Response(self.status, json=body)

    def client(self) -> RcClient:
        return RcClient("http://127.0.0.1:5572", timeout=5, transport=httpx.MockTransport(self))


def test_refresh_sends_numbered_dirs_and_recursive_as_a_string() -> None:
    wire = Wire()
    result = wire.client().refresh(["/__all__/Show A", "__all__/Show B"], recursive=True)
    request = wire.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/vfs/refresh"
    assert json.loads(request.content) == {
        "dir": "__all__/Show A", "dir2": "__all__/Show B", "recursive": "true",
    }
    assert result == {"__all__/Show A": "OK", "__all__/Show B": "OK"}


def test_per_dir_failure_comes_back_as_a_value_not_an_error() -> None:
    wire = Wire(body={"result": {"gone": "file does not exist"}})
    assert wire.client().refresh(["gone"]) == {"gone": "file does not exist"}


def test_error_status_raises_with_rclone_message() -> None:
    wire = Wire(status=500, body={"error": "no VFS active", "input": {}, "path": "vfs/refresh",
                                  "status": 500})
    with pytest.raises(RcError, match="HTTP 500: no VFS active"):
        wire.client().refresh([])


def test_unreachable_rc_raises_and_noop_says_false() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = RcClient("http://127.0.0.1:1", timeout=1, transport=httpx.MockTransport(refuse))
    with pytest.raises(RcError, match="no answer"):
        client.refresh(["x"])
    assert client.noop() is False


def test_noop_true_when_rc_answers() -> None:
    wire = Wire(body={})
    assert wire.client().noop() is True
    assert wire.requests[0].url.path == "/rc/noop"


def test_forget_never_sends_an_empty_forget_everything() -> None:
    wire = Wire(body={"forgotten": []})
    wire.client().forget([])
    assert wire.requests == []
    wire.client().forget(["/__all__/A/e1.mkv"], dirs=["__all__/A"])
    assert json.loads(wire.requests[0].content) == {"file": "__all__/A/e1.mkv",
                                                    "dir": "__all__/A"}


def test_monitor_refresh_sends_paths_relative_to_the_mount() -> None:
    wire = Wire()
    mounts = [MountSettings("zurg", "/mnt/media/zurg", "__all__", rc_url="http://rc:5572"),
              MountSettings("plain", "/mnt/media/plain", "x")]
    monitor = MountMonitor(mounts, Timeouts(), rc_transport=httpx.MockTransport(wire))
    try:
        monitor.refresh("zurg", ["/mnt/media/zurg/__all__/Show A", "/mnt/media/zurg"])
        monitor.refresh("plain", ["/mnt/media/plain/x"])  # no rc_url: nothing sent
    finally:
        monitor.close()
    assert len(wire.requests) == 1
    assert json.loads(wire.requests[0].content) == {"dir": "", "dir2": "__all__/Show A"}


# ---- replay of the real recording ------------------------------------------------------------

def _normal(body: Any) -> Any:
    """rc takes dir, dir2, ... as a set, and `fs` only matters with several VFSes."""
    if not isinstance(body, dict):
        body = {}
    dirs = sorted(v for k, v in body.items() if k.startswith("dir"))
    rest = {k: v for k, v in body.items() if not k.startswith("dir") and k != "fs"}
    return {"dirs": dirs, **rest}


class Replay(ThreadingHTTPServer):
    def __init__(self, calls: list[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _ReplayHandler)
        self.calls = calls
        self.seen: list[tuple[str, str, Any]] = []


class _ReplayHandler(BaseHTTPRequestHandler):
    server: Replay

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.server.seen.append((self.command, self.path, body))
        status, answer = 404, {"error": "not recorded", "path": self.path, "status": 404}
        for call in self.server.calls:
            req = call["request"]
            if (req["method"] == self.command and req["path"] == self.path
                    and _normal(req["json_body"]) == _normal(body)):
                status, answer = call["status"], call["response"]
                break
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = _answer
    do_GET = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _scenario(name: str) -> list[dict[str, Any]]:
    if not RECORDING.exists():
        pytest.skip(f"recorded rclone responses not found at {RECORDING} (../shared absent)")
    return list(json.loads(RECORDING.read_text())["scenarios"][name]["calls"])


@pytest.fixture
def replay(request: pytest.FixtureRequest) -> Iterator[Replay]:
    server = Replay(_scenario(getattr(request, "param", "serve_http_rc_no_auth")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Replay) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_replay_refresh_recursive(replay: Replay) -> None:
    client = RcClient(_url(replay), timeout=5)
    assert client.refresh(["shows"], recursive=True) == {"shows": "OK"}
    assert replay.seen[-1] == ("POST", "/vfs/refresh", {"dir": "shows", "recursive": "true"})


def test_replay_refresh_several_dirs_and_a_missing_one(replay: Replay) -> None:
    client = RcClient(_url(replay), timeout=5)
    assert client.refresh(["shows", "movies"]) == {"shows": "OK", "movies": "OK"}
    assert client.refresh(["nope"]) == {"nope": "file does not exist"}
    assert client.refresh(["shows/A/e1.mkv"]) == {"shows/A/e1.mkv": "invalid argument"}


def test_replay_forget(replay: Replay) -> None:
    client = RcClient(_url(replay), timeout=5)
    client.forget(["shows/A/e1.mkv"], dirs=["shows/A"])
    assert replay.seen[-1] == ("POST", "/vfs/forget", {"file": "shows/A/e1.mkv", "dir": "shows/A"})


@pytest.mark.parametrize("replay", ["rcd_no_vfs"], indirect=True)
def test_replay_error_status_without_vfs(replay: Replay) -> None:
    client = RcClient(_url(replay), timeout=5)
    with pytest.raises(RcError, match="no VFS active") as info:
        client.refresh([])
    assert info.value.status == 500
