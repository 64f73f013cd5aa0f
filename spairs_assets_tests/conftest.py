"""Shared fixtures: an isolated config and data root per test, and bad-input builders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

# Tests never touch the network or a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a spairs.yaml into tmp_path (data under tmp_path/data) and point SPAIRS_CONFIG at it."""

    def _write(**settings) -> Path:
        settings.setdefault("data_root", "data")
        path = tmp_path / "spairs.yaml"
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
        monkeypatch.setenv("SPAIRS_CONFIG", str(path))
        return path

    return _write
