"""`pip install sigdiff` without the dev extra runs every command: the package imports only what
`[project].dependencies` declares, and every `--help` plus a tiny end to end (data make → split →
train → sample → eval) work in a subprocess where the dev-only packages cannot be imported."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Import names whose distribution is named differently.
DISTRIBUTION_OF = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "ot": "pot",
                   "cv2": "opencv-python", "skimage": "scikit-image"}
#: Dev-only packages named by the reliability issue (blocked even if the dev extra changes).
ALWAYS_BLOCKED = ("diffusers", "ot", "prdc", "hypothesis")
#: Optional extras a guarded import (``try: import x / except ImportError``) may come from.
OPTIONAL_EXTRAS = ("io", "downstream")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group(0))  # type: ignore[union-attr]
            for r in requirements}


def _distribution(module: str) -> str:
    return _norm(DISTRIBUTION_OF.get(module, module))


DEPENDENCIES = _names(PYPROJECT["project"]["dependencies"])
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
OPTIONAL = set().union(*(_names(EXTRAS[e]) for e in OPTIONAL_EXTRAS))


def _package_files() -> list[Path]:
    """Every module of the installed package (sigdiff plus the folders mapped into it)."""
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"].values()
    return sorted(f for d in dirs for f in (ROOT / d).rglob("*.py"))


def _guarded(tree: ast.Module) -> set[int]:
    """ids of import nodes inside ``try`` blocks that handle ImportError."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {n.id for h in node.handlers if h.type is not None
                  for n in ast.walk(h.type) if isinstance(n, ast.Name)}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, guarded) of each absolute import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded = _guarded(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], node.lineno, id(node) in guarded) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno, id(node) in guarded))
    return found


def test_package_imports_only_declared_dependencies() -> None:
    files = _package_files()
    assert len(files) > 40 and any(f.name == "classifiers.py" for f in files)
    local = {"sigdiff", *sys.stdlib_module_names}
    undeclared = []
    for path in files:
        for module, line, guarded in _imports(path):
            dist = _distribution(module)
            if module in local or dist in DEPENDENCIES or (guarded and dist in OPTIONAL):
                continue
            undeclared.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({dist})")
    assert not undeclared, ("declare these in [project].dependencies (or guard the import and "
                            "declare it in an optional extra):\n" + "\n".join(undeclared))


def _blocked_modules() -> list[str]:
    """Import names of the dev extra's packages that a plain install lacks."""
    dev_only = _names(EXTRAS["dev"]) - DEPENDENCIES
    names = set(ALWAYS_BLOCKED)
    for module, dists in importlib.metadata.packages_distributions().items():
        if any(_norm(d) in dev_only for d in dists) and module.isidentifier():
            names.add(module)
    return sorted(names)


BLOCKER = '''
"""Test-only sitecustomize: the dev-only packages cannot be imported (a plain install).

A ``None`` entry in sys.modules makes ``import x`` raise ModuleNotFoundError and
``importlib.util.find_spec(x)`` return None, exactly as for a package that is not installed."""
import sys

for name in {blocked!r}:
    sys.modules[name] = None
'''

DRIVER = '''
import importlib, json, sys
from click.testing import CliRunner

from sigdiff.cli.main import cli

for name in {probe!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    sys.exit(f"the blocker let {{name}} through")
runner = CliRunner()


def commands(group, path=()):
    yield path
    for name, sub in getattr(group, "commands", {{}}).items():
        yield from commands(sub, (*path, name))


for argv in [[*p, "--help"] for p in commands(cli)] + json.loads(sys.argv[1]):
    res = runner.invoke(cli, argv)
    if res.exit_code != 0 or res.exception and not isinstance(res.exception, SystemExit):
        import traceback
        traceback.print_exception(res.exception)
        sys.exit(f"sigdiff {{' '.join(argv)}} failed ({{res.exit_code}}):\\n{{res.output}}")
    print("ok:", " ".join(argv))
leaked = sorted(m for m, mod in sys.modules.items()
                if mod is not None and m.split(".")[0] in {blocked!r})
sys.exit(f"blocked modules imported: {{leaked}}" if leaked else 0)
'''

END_TO_END = [
    ["data", "make", "ecg5000", "--out", "ecg.zarr"],
    ["data", "split", "ecg.zarr", "--holdout", "0.2", "--seed", "0"],
    ["train", "--data", "ecg.train.zarr", "--out", "run", "--preset", "tiny", "--steps", "4",
     "--batch-size", "4", "--quiet"],
    ["sample", "--run", "run", "--n", "8", "--steps", "2", "--out", "samples.zarr", "--quiet"],
    ["eval", "--train", "ecg.train.zarr", "--holdout", "ecg.holdout.zarr", "--samples",
     "samples.zarr", "--out", "eval", "--permutations", "10", "--pca-components", "2", "--k", "2",
     "--extras", "classifiers", "--no-progress"],
]


def _plain_python(tmp: Path, blocked: list[str]) -> dict[str, str]:
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER.format(blocked=blocked)))
    return {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}


def test_every_command_runs_without_dev_packages(tmp_path: Path) -> None:
    blocked = _blocked_modules()
    env = _plain_python(tmp_path, blocked)
    driver = DRIVER.format(probe=list(ALWAYS_BLOCKED), blocked=blocked)
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run([sys.executable, "-c", driver, json.dumps(END_TO_END)], cwd=work,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    done = set(res.stdout.splitlines())
    for argv in [["--help"], ["eval", "--help"], ["data", "make", "--help"], *END_TO_END]:
        assert "ok: " + " ".join(argv) in done, (argv, res.stdout)
    assert (work / "eval" / "metrics.json").is_file()
    # the entry point itself, as the reliability issue ran it
    res = subprocess.run([sys.executable, "-m", "sigdiff.cli.main", "eval", "--help"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Usage:" in res.stdout, res.stderr[-3000:]


def test_every_package_folder_is_installed() -> None:
    """A wheel holds only the listed packages: every folder of the package with Python modules or
    data must be listed (an unlisted sub-package would import in an editable install and be
    missing from a plain one)."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = set()
    for name, folder in dirs.items():
        root = ROOT / folder
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts or not any(f.is_file() for f in d.iterdir()):
                continue
            rel = d.relative_to(root).parts
            found.add(".".join([name, *rel]))
    assert found - listed == set(), f"unlisted package folders: {sorted(found - listed)}"
