"""The layering, enforced: every import arrow points one way.

From the bottom up (a module may import its own layer and the layers below):

0. ``detection``: the framework-free vision package, its tools and CLI;
1. ``exams.models``, ``exams.risk``, ``exams.storage``: the data, its domain rules and its files;
2. ``exams.live`` (pushes to the channel layer), ``exams.access``, ``exams.presence``
   (who holds a candidate's session), ``exams.clips`` (the frames around each event);
3. ``exams.services``: every workflow;
4. ``exams.analysis`` (live analysis of sessions), ``exams.reports``, ``exams.tasks``;
5. the entry points: consumers, views, admin, urls, management commands, template
   tags, and the load generator (``exams.loadtest``);
6. ``proctor``: settings, ASGI and URL routing, the Celery app.

On top of that, ``detection`` never imports Django, Channels, Celery or the
apps; the apps use ``detection`` only through ``detection.core``'s public API (the load
generator, a tool, may also use ``detection.tools``);
and no module imports another that (directly or not) imports it back, even
through an import placed inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("detection", "exams", "proctor")
TOOLS = "exams.loadtest"  # may use detection.tools, like the detection CLI
FRAMEWORKS = ("django", "celery", "channels", "kombu", "daphne", "redis", "channels_redis")

LAYERS: list[tuple[str, ...]] = [
    ("detection",),
    ("exams.models", "exams.risk", "exams.storage", "exams.migrations", "exams.apps", "exams"),
    ("exams.live", "exams.access", "exams.presence", "exams.clips"),
    ("exams.services",),
    ("exams.analysis", "exams.reports", "exams.tasks"),
    (
        "exams.consumers",
        "exams.views",
        "exams.admin",
        "exams.admin_forms",
        "exams.urls",
        "exams.management",
        "exams.templatetags",
        "exams.loadtest",
    ),
    ("proctor",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found = {}
    for package in FIRST_PARTY:
        for path in (ROOT / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` imports, at any depth of its code (function bodies included)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # `from exams import live` imports the module exams.live
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return found


def import_graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {module: _imports(module, path, known) for module, path in sources.items()}


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer): the most specific prefix wins
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target) if target.split(".")[0] in FIRST_PARTY else None
            if here is not None and there is not None and there > here:
                problems.append(f"{module} (layer {here}) imports {target} (layer {there})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among first-party modules, each reported once."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                found.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_it_finds_no_import_cycle():
    assert cycles(import_graph()) == []


def test_it_finds_no_import_that_runs_back_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_it_places_every_first_party_module_in_a_layer():
    assert [m for m in import_graph() if layer_of(m) is None] == []


def test_it_keeps_detection_free_of_frameworks_and_apps():
    offenders = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.startswith("detection")
        for target in targets
        if target.split(".")[0] in FRAMEWORKS + ("exams", "proctor")
    ]
    assert offenders == []


def test_it_lets_the_apps_use_detection_only_through_its_public_api():
    offenders = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if not module.startswith("detection")
        for target in targets
        if target.startswith("detection")
        and target != "detection.core"
        and not (module.startswith(TOOLS) and target.startswith("detection.tools"))
    ]
    assert offenders == []


# The checks themselves must be able to fail: a made-up graph with a back edge.


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"exams.services.events": {"exams.analysis.intake"}, "exams.analysis.intake": set()}, 1),
        ({"exams.models": {"exams.views.review"}, "exams.views.review": set()}, 1),
        ({"detection.core.rules": {"exams.models"}, "exams.models": set()}, 1),
        ({"exams.views.review": {"exams.models"}, "exams.models": set()}, 0),
    ],
)
def test_it_would_catch_an_upward_import(graph, expected):
    assert len(upward_imports(graph)) == expected


def test_it_would_catch_a_cycle_hidden_in_a_function():
    graph = {"exams.reports.data": {"exams.reports.pdf"}, "exams.reports.pdf": {"exams.reports.data"}}
    assert cycles(graph) == [["exams.reports.data", "exams.reports.pdf", "exams.reports.data"]]
