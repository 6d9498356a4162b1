# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ROS linters of a generated ament_python package: flake8, pep257 and copyright.

flake8 and pep257 run as ruff rule sets (``.ruff.toml`` selects E/W/F and D); copyright is
checked here directly, as ament_copyright does, for the Apache-2.0 header.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("denseflow_ros", "training", "test", "launch")


def _python_files() -> list[Path]:
    files = [REPO_ROOT / "setup.py"]
    for name in SOURCE_DIRS:
        files.extend(sorted((REPO_ROOT / name).rglob("*.py")))
    return [f for f in files if "__pycache__" not in f.parts]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(exe).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [exe]


def _ruff_findings() -> list[str]:
    result = subprocess.run(
        [*_ruff(), "check", "--output-format", "concise", "--no-cache", *SOURCE_DIRS,
         "setup.py"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode in (0, 1), result.stderr
    return [line for line in result.stdout.splitlines() if re.match(r"\S+:\d+:\d+: ", line)]


def test_flake8() -> None:
    findings = [f for f in _ruff_findings() if not f.split(": ", 1)[1].startswith("D")]
    assert not findings, "\n".join(findings)


def test_pep257() -> None:
    findings = [f for f in _ruff_findings() if f.split(": ", 1)[1].startswith("D")]
    assert not findings, "\n".join(findings)


def test_copyright() -> None:
    missing = [
        str(f.relative_to(REPO_ROOT))
        for f in _python_files()
        if "SPDX-License-Identifier: Apache-2.0" not in f.read_text(encoding="utf-8")[:400]
    ]
    assert not missing, f"files without the Apache-2.0 header: {missing}"
