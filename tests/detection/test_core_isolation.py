"""detection/ stays framework-free, and its core light to import and free of the dev tools."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

DETECTION = Path(__file__).resolve().parents[2] / "detection"
CORE = DETECTION / "core"
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
    modules = json.loads(out.stdout)
    loaded = {name.split(".")[0] for name in modules}
    assert not loaded & set(FRAMEWORKS), loaded & set(FRAMEWORKS)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert [m for m in modules if m.startswith("detection.tools")] == []


def _imports(path: Path) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(DETECTION.parent).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


def test_no_module_in_detection_imports_a_framework():
    offenders = [
        f"{path.relative_to(DETECTION)}: {name}"
        for path in sorted(DETECTION.rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in FRAMEWORKS
    ]
    assert offenders == []


def test_the_core_never_imports_the_tools():
    offenders = [
        f"{path.relative_to(DETECTION)}: {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in _imports(path)
        if name == "detection.tools" or name.startswith("detection.tools.")
    ]
    assert offenders == []
