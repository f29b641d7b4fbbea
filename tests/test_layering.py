"""The one-way imports: sr_models -> analysis -> ratings, and Django only where it belongs.

sr_models and analysis's statistics run on machines without Django (a GPU box, a notebook): keep
them free of it, and of the package above them. Within analysis, imports run one way too, so a
module can be read (and moved) without the ones that use it.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SR_MODULES = [
    "sr_models.resize",
    "sr_models.metrics",
    "sr_models.images",
    "sr_models.files",
    "sr_models.datasets",
    "sr_models.networks",
    "sr_models.losses",
    "sr_models.vgg",
    "sr_models.training",
    "sr_models.inference",
    "sr_models.methods",
    "sr_models.evaluation",
    "sr_models.train",
    "sr_models.lpips",
    "sr_models.dists",
    "sr_models.niqe",
    "sr_models.sharpness",
    "sr_models.variants",
    "sr_models.model_card",
    "sr_models.plots",
]

# Every analysis module outside management/ (the commands are the Django side of the package).
ANALYSIS_MODULES = sorted(
    f"analysis.{path.stem}" for path in (REPO / "analysis").glob("*.py") if path.stem not in ("__init__", "apps")
)


def _imported(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """Modules matching ``forbidden`` that importing ``modules`` pulls in, in a fresh interpreter."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + (
        f"print([m for m in sys.modules if m.split('.')[0] in {forbidden!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def test_sr_models_never_imports_django():
    assert _imported(SR_MODULES, ("django", "ratings", "analysis", "mos_site")) == []


def test_analysis_statistics_import_neither_django_nor_ratings():
    assert "analysis.simulation" in ANALYSIS_MODULES and "analysis.report" in ANALYSIS_MODULES  # premise
    assert _imported(ANALYSIS_MODULES, ("django", "ratings", "mos_site")) == []


def _analysis_imports(module: str) -> set[str]:
    """The analysis modules ``module`` imports anywhere in its file (functions included)."""
    tree = ast.parse((REPO / Path(*module.split("."))).with_suffix(".py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from analysis import stats
    return {name for name in found if name in ANALYSIS_MODULES and name != module}


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


def test_the_cycle_check_finds_a_cycle():
    # The check above can fail: a two-module and a three-module cycle are found.
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
