"""detection.core stays framework-free and light to import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "detection" / "core"
FRAMEWORKS = ("django", "celery", "channels", "kombu")
HEAVY = ("face_recognition", "face_recognition_models", "dlib", "_dlib_pybind11", "ai_edge_litert")


def test_it_imports_without_frameworks_or_models():
    code = (
        "import importlib, json, pkgutil, sys; import detection.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'detection.core.'): importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=CORE.parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & set(FRAMEWORKS), loaded & set(FRAMEWORKS)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_no_module_under_core_imports_a_framework():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FRAMEWORKS]
    assert offenders == []
