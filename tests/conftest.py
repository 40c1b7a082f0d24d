"""Shared fixtures: the real-FUSE rig (tests/fuse/rig.py). See docs/fuse-tests.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fuse.rig import FuseRig, missing_requirements


@pytest.fixture
def fuse_rig_factory(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., FuseRig]]:
    """Build started ``FuseRig``s with custom options (``dir_cache_time=...``, ``names=...``).

    Every rig built here is closed by a finalizer, whatever the test did to it.
    """
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(f"real FUSE tests need rclone, fusermount and /dev/fuse: {reason}")
    rigs: list[FuseRig] = []

    def build(**kwargs: Any) -> FuseRig:
        rig = FuseRig(Path(tmp_path_factory.mktemp("fuse-rig")), **kwargs)
        # Registered before start so a half-started rig (one mount up, the next failing) is
        # still torn down.
        request.addfinalizer(rig.close)
        rigs.append(rig)
        rig.start()
        return rig

    yield build
    for rig in rigs:
        rig.close()


@pytest.fixture
def fuse_rig(fuse_rig_factory: Callable[..., FuseRig]) -> FuseRig:
    """Two healthy mounts, "zurg" (``__all__``) and "torbox" (``torrents``, ``usenet``), a farm."""
    return fuse_rig_factory()
