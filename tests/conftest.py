from __future__ import annotations

from pathlib import Path

import pytest
from matrices import TINY


@pytest.fixture
def tiny_matrix(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path
