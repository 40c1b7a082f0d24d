"""The daemon's HTTP port with fake probes and a real queue (no worker): what each endpoint answers
and what it enqueues."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from symlinkd.model import EntryKind, Judgement, LinkFacts, PassReport, Verdict
from symlinkd.settings import DaemonSettings
from tests.daemon.http_rig import FARM, TOKEN, Rig, http_rig


@pytest.fixture
def rig() -> Iterator[Rig]:
    with http_rig() as made:
        yield made


def _auth() -> dict[str, str]:
    return {"X-Api-Key": TOKEN}


def test_metrics_are_prometheus_text(rig: Rig) -> None:
    answer = rig.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'symlinkd_build_info{version="' in answer.text
    rig.client.get("/nope")
    assert 'symlinkd_http_requests_total{code="404",route="other"} 1.0' in (
        rig.client.get("/metrics").text
    )


def test_health_and_readiness_follow_the_daemon(rig: Rig) -> None:
    assert rig.client.get("/healthz").status_code == 200
    assert rig.client.get("/readyz").json()["status"] == "ready"
    rig.health["healthy"] = False
    rig.health["ready"] = False
    assert rig.client.get("/healthz").status_code == 503
    answer = rig.client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["last_pass"] == "none yet"


def test_sonarr_download_queues_the_series_folder(rig: Rig) -> None:
    payload = {"eventType": "Download", "series": {"id": 1, "path": f"{FARM}/Shows/Peacemaker"},
               "episodeFile": {"path": f"{FARM}/Shows/Peacemaker/S02E05.mkv"}}
    answer = rig.client.post("/webhook/sonarr", json=payload, headers=_auth())
    assert answer.status_code == 202
    request = rig.take()
    assert request is not None and not request.full
    assert request.paths == {f"{FARM}/Shows/Peacemaker"}
    assert request.source == "sonarr:Download"


def test_radarr_token_in_query_and_put(rig: Rig) -> None:
    payload = {"eventType": "MovieFileDelete", "movie": {"folderPath": f"{FARM}/Movies/Heat"}}
    answer = rig.client.put(f"/webhook/radarr?token={TOKEN}", json=payload)
    assert answer.status_code == 202
    request = rig.take()
    assert request is not None and request.paths == {f"{FARM}/Movies/Heat"}


def test_test_event_answers_200_without_a_pass(rig: Rig) -> None:
    payload = {"eventType": "Test", "series": {"id": 1, "title": "Test Title",
                                               "path": "C:\\testpath"}}
    answer = rig.client.post("/webhook/sonarr", json=payload, headers=_auth())
    assert answer.status_code == 200
    assert answer.json()["ignored"] == "test event"
    assert rig.take() is None


@pytest.mark.parametrize(
    "headers_or_query",
    [{}, {"X-Api-Key": "wrong"}, {"X-Api-Key": TOKEN[:-1]}, "?token=wrong", "?token="],
)
def test_missing_or_wrong_token_is_401_and_queues_nothing(
    rig: Rig, headers_or_query: dict[str, str] | str
) -> None:
    url = "/webhook/sonarr"
    headers: dict[str, str] = {}
    if isinstance(headers_or_query, str):
        url += headers_or_query
    else:
        headers = headers_or_query
    answer = rig.client.post(url, json={"eventType": "Download",
                                        "series": {"path": f"{FARM}/x"}}, headers=headers)
    assert answer.status_code == 401
    assert rig.client.post("/api/v1/scan", headers=headers).status_code == 401
    assert rig.take() is None


def test_webhooks_are_off_without_a_configured_token(rig: Rig) -> None:
    rig.settings[0] = replace(rig.settings[0], daemon=DaemonSettings(webhook_token=None))
    answer = rig.client.post("/webhook/sonarr", json={"eventType": "Test"}, headers=_auth())
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe garbage", b"", b"[1, 2]", b'"Download"', b'{"eventType": 7}'],
)
def test_malformed_bodies_are_400(rig: Rig, body: bytes) -> None:
    answer = rig.client.post("/webhook/sonarr", content=body,
                             headers={**_auth(), "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "error" in answer.json()
    assert rig.client.get("/healthz").status_code == 200  # still serving


def test_oversized_body_is_413_and_the_server_goes_on(rig: Rig) -> None:
    body = b"x" * (10 * 1024 * 1024)
    answer = rig.client.post("/webhook/sonarr", content=body, headers=_auth())
    assert answer.status_code == 413
    assert rig.client.get("/healthz").status_code == 200


def test_oversized_body_is_refused_from_its_header_alone(rig: Rig) -> None:
    # Announce 10 MB, send a few bytes: the answer must come without waiting for the rest.
    port = int(rig.client.base_url.port or 0)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhook/sonarr HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + TOKEN.encode()
            + b"\r\nContent-Length: 10485760\r\n\r\n{\"eventType\""
        )
        # No half-close here: the server takes a FIN for a client that has gone (that is how a
        # scrape that timed out is noticed), as waitress does.
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 413")


def test_chunked_body_is_411(rig: Rig) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"eventType": "Test"}'

    answer = rig.client.post("/webhook/sonarr", content=chunks(), headers=_auth())
    assert answer.status_code == 411


def test_unknown_route_and_wrong_method(rig: Rig) -> None:
    assert rig.client.get("/webhook/nope").status_code == 404
    assert rig.client.get("/webhook/sonarr").status_code == 405
    assert rig.client.post("/metrics").status_code == 405


def test_manual_scan_full_and_path(rig: Rig) -> None:
    assert rig.client.post("/api/v1/scan", headers=_auth()).status_code == 202
    request = rig.take()
    assert request is not None and request.full
    answer = rig.client.post("/api/v1/scan", json={"path": "Shows/X"}, headers=_auth())
    assert answer.status_code == 202
    request = rig.take()
    assert request is not None and request.paths == {f"{FARM}/Shows/X"}
    answer = rig.client.post("/api/v1/scan", json={"path": "/etc"}, headers=_auth())
    assert answer.status_code == 400
    answer = rig.client.post("/api/v1/scan", json={"paths": "Shows"}, headers=_auth())
    assert answer.status_code == 400
    assert rig.take() is None


def test_zurg_update_before_any_full_pass_queues_a_full_pass(rig: Rig) -> None:
    answer = rig.client.post("/webhook/zurg", content=b"__all__/Show.S01\n__all__/Movie\n",
                             headers=_auth())
    assert answer.status_code == 202
    request = rig.take()
    assert request is not None and request.full
    assert ("zurg", "/m/zurg/__all__/Show.S01") in request.refresh
    assert ("zurg", "/m/zurg/__all__") in request.refresh


def test_zurg_update_rechecks_the_farm_folders_linking_into_it(rig: Rig) -> None:
    facts = LinkFacts(path=f"{FARM}/Shows/S/S01/e1.mkv", kind=EntryKind.SYMLINK, link_mtime=0.0,
                      target="/m/zurg/__all__/Show.S01/e1.mkv",
                      resolved="/m/zurg/__all__/Show.S01/e1.mkv", mount="zurg")
    rig.targets.update(PassReport(run_id="1", kind="full", apply=True, started=0.0,
                                  judgements=[Judgement(facts, Verdict.OK, 1.0)]))
    answer = rig.client.post("/webhook/zurg", json=["__all__/Show.S01", "__all__/Other"],
                             headers=_auth())
    assert answer.status_code == 202
    assert answer.json()["queued"] == [f"{FARM}/Shows/S/S01"]
    request = rig.take()
    assert request is not None and request.paths == {f"{FARM}/Shows/S/S01"}
    assert ("zurg", "/m/zurg/__all__/Other") in request.refresh


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"directories": ["__all__/A"]}', "application/json", 202),
        (b"dir=__all__%2FA&dir=__all__%2FB", "application/x-www-form-urlencoded", 202),
        (b"[SubsPlease] Show - 01\n", "text/plain", 202),  # a line, not JSON
        (b"[1, 2]", "application/json", 400),
        (b"{broken", "application/json", 400),
        (b"__all__/../../etc\n", "text/plain", 400),
        (b"\n\n", "text/plain", 400),
    ],
)
def test_zurg_body_shapes(rig: Rig, body: bytes, content_type: str, status: int) -> None:
    answer = rig.client.post("/webhook/zurg?mount=zurg", content=body,
                             headers={**_auth(), "Content-Type": content_type})
    assert answer.status_code == status, answer.text


def test_zurg_unknown_mount_is_400(rig: Rig) -> None:
    answer = rig.client.post("/webhook/zurg?mount=rd", content=b"__all__/A", headers=_auth())
    assert answer.status_code == 400
    assert json.loads(answer.text)["error"] == "no mount named 'rd'"


def test_closed_queue_answers_503(rig: Rig) -> None:
    rig.queue.close()
    answer = rig.client.post("/api/v1/scan", headers=_auth())
    assert answer.status_code == 503
