"""Markers of the deploy tests (registered here: --strict-markers is on)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "apiserver: starts the real kube-apiserver of ../shared/tools/apiserver "
        "(OpenShift SCC admission); skipped with the reason when it or etcd is absent")
