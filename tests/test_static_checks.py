"""ruff, ``mypy --strict`` (uauth, tests, bench) and the import contract: STYLE.md, the layers.

``make lint`` runs the same two (and the import contract) before pytest in ``make test``; they
are here as well so that pytest alone catches a regression. Cheap: ruff takes a fraction of a
second and mypy reuses ``.mypy_cache`` (about a second warm).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "uauth", "tests", "bench",
                             "examples"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_are_kept() -> None:
    """The layer and no-Flask-in-core contracts of ``[tool.importlinter]`` (docs/architecture.md)."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout
