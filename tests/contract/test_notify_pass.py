"""A real pass over the demo farm tells the fake servers about exactly the folders it changed
(the runtime's wiring: outcomes -> changes -> hub), and a dry-run pass tells them nothing."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from symlinkd.demo import build_demo_farm
from symlinkd.model import ActionKind, OutcomeResult
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import ArrServer, MediaServer, NotifySettings, Secret
from tests.contract.conftest import PLEX_TOKEN, SONARR_KEY
from tests.contract.fakes import FakePlex, FakeServer, FakeSonarr


def test_pass_notifies_the_folders_it_changed(tmp_path: Path,
                                              servers: list[FakeServer]) -> None:
    settings = build_demo_farm(str(tmp_path), time.time())
    farm = settings.farm
    plex = FakePlex(PLEX_TOKEN, [("1", "Everything", ["/data"])])
    shows = {e.name: i for i, e in enumerate(os.scandir(os.path.join(farm, "Shows")), 1)}
    sonarr = FakeSonarr(SONARR_KEY, [{"id": i, "title": name, "path": f"/tv/{name}"}
                                     for name, i in shows.items()], {}, {})
    servers.extend([plex.start(), sonarr.start()])
    settings = replace(settings, notify=NotifySettings(
        plex=MediaServer(plex.url, Secret(PLEX_TOKEN), path_map=((farm, "/data"),)),
        sonarr=ArrServer(sonarr.url, Secret(SONARR_KEY),
                         path_map=((os.path.join(farm, "Shows"), "/tv"),)),
    ))

    with build_runtime(settings, registry=CollectorRegistry()) as runtime:
        dry = runtime.run_pass(PassOptions(apply=False))
        assert plex.requests == [] and sonarr.requests == []
        assert any(note.startswith("would send: plex") for note in dry.notes)

        report = runtime.run_pass(PassOptions(apply=True))

    done = [o for o in report.outcomes if o.result is OutcomeResult.DONE
            and o.planned.action.kind in (ActionKind.RELINK, ActionKind.PRUNE)]
    assert done, "the demo farm should need at least one repair"
    changed = [o.planned.path for o in done]
    # A relinked folder link is rescanned itself; anything else from its parent folder.
    folders = sorted({"/data" + (o.planned.path if o.planned.judgement.facts.target_is_dir
                                 and o.planned.action.kind is ActionKind.RELINK
                                 else os.path.dirname(o.planned.path))[len(farm):]
                      for o in done})
    assert sorted(p for _, p in plex.refreshes()) == folders
    touched_shows = sorted({shows[p[len(farm) + 1:].split("/")[1]] for p in changed
                            if p.startswith(os.path.join(farm, "Shows") + "/")})
    assert sorted(c["seriesId"] for c in sonarr.commands()
                  if c["name"] == "RescanSeries") == touched_shows
