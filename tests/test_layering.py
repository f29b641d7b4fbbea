"""The one-way imports: sr_models -> analysis -> ratings, and Django only where it belongs.

sr_models and analysis run on machines without Django (a GPU box, a notebook): keep them free of
it, and of the package above them (their management commands live in ``sr_tools`` and ``ratings``).
Within analysis and within ratings, imports run one way too, so a module can be read (and moved)
without the ones that use it: the caller imports the task (``ratings.dispatch`` -> ``tasks`` ->
``generation``), never the other way.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _package_modules(package: str) -> dict[str, Path]:
    """Every module of ``package``, subpackages included: dotted name -> file."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


# Every module, so that a new one is checked without being listed here.
SR_MODULES = sorted(m for m in _package_modules("sr_models") if m != "sr_models")
# All of analysis: no part of it is Django's any more (its commands moved to ratings).
ANALYSIS_MODULES = sorted(m for m in _package_modules("analysis") if m != "analysis")
RATINGS_MODULES = _package_modules("ratings")


def _imported(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """Modules matching ``forbidden`` that importing ``modules`` pulls in, in a fresh interpreter."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + (
        f"print([m for m in sys.modules if m.split('.')[0] in {forbidden!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def test_sr_models_never_imports_django():
    assert "sr_models.training" in SR_MODULES and "sr_models.train" in SR_MODULES  # premise
    assert _imported(SR_MODULES, ("django", "ratings", "analysis", "mos_site")) == []


def test_analysis_statistics_import_neither_django_nor_ratings():
    assert "analysis.simulation" in ANALYSIS_MODULES and "analysis.report" in ANALYSIS_MODULES  # premise
    assert _imported(ANALYSIS_MODULES, ("django", "ratings", "mos_site")) == []


def _imports(module: str, path: Path) -> set[str]:
    """Every name ``module`` imports anywhere in its file (inside functions too: a lazy import is
    still an import), relative imports resolved: ``from .tasks import t`` in ``ratings.dispatch``
    gives ``ratings.tasks`` and ``ratings.tasks.t``; ``from . import tasks`` gives ``ratings.tasks``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # from analysis import stats
    return found


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which of ``modules`` each of them imports."""
    return {m: {name for name in _imports(m, path) if name in modules and name != m} for m, path in modules.items()}


def _analysis_imports(module: str) -> set[str]:
    """The analysis modules ``module`` imports anywhere in its file (functions included)."""
    path = (REPO / Path(*module.split("."))).with_suffix(".py")
    return {name for name in _imports(module, path) if name in ANALYSIS_MODULES and name != module}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a path, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return []


def test_no_import_cycle_between_analysis_modules():
    graph = {m: _analysis_imports(m) for m in ANALYSIS_MODULES}
    assert "analysis.simulation" in graph["analysis.planning"]  # premise: the graph sees imports
    assert _cycle(graph) == []


def test_no_import_cycle_between_ratings_modules():
    """Catches generation importing tasks (or dispatch) back, as ``enqueue_pending`` did lazily, and
    any other pair of ratings modules that need each other, commands and migrations included."""
    graph = _graph(RATINGS_MODULES)
    # premise: the graph sees relative, absolute and lazy imports
    assert {"ratings.tasks", "ratings.models"} <= graph["ratings.dispatch"]
    assert "ratings.generation" in graph["ratings.tasks"]
    assert "ratings.dispatch" in graph["ratings.management.commands.run_study"]
    assert _cycle(graph) == []


def test_the_import_graph_counts_lazy_and_relative_imports(tmp_path):
    # The ratings check above can fail: the import inside a function that generation once had is seen.
    (tmp_path / "generation.py").write_text("def enqueue_pending():\n    from .tasks import generate_stimulus_task\n")
    assert _imports("ratings.generation", tmp_path / "generation.py") >= {"ratings.tasks"}
    (tmp_path / "__init__.py").write_text("from . import tasks\nfrom ..models import Study\n")
    assert _imports("ratings.management", tmp_path / "__init__.py") >= {"ratings.management.tasks", "ratings.models"}


def test_analysis_and_sr_models_name_no_django_or_ratings_import_anywhere():
    """Importing a module (the tests above) misses an import inside a function until it runs:
    this reads every file, so a lazy ``from ratings.models import ...`` in analysis is caught."""
    assert not (REPO / "analysis" / "management").exists() and not (REPO / "sr_models" / "management").exists()
    bad = {}
    for package, forbidden in (("analysis", ("django", "ratings", "mos_site", "sr_tools")),
                               ("sr_models", ("django", "ratings", "analysis", "mos_site", "sr_tools"))):
        for module, path in _package_modules(package).items():
            names = sorted(n for n in _imports(module, path) if n.split(".")[0] in forbidden)
            if names:
                bad[module] = names
    assert bad == {}


def test_the_cycle_check_finds_a_cycle():
    # The check above can fail: a two-module and a three-module cycle are found.
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
