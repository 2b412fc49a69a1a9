"""What ships to Azure: the app never imports the dev tooling, and .funcignore keeps it out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("devhost", "tests", "bench", "cli")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_app_never_imports_dev_tooling():
    sources = [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]
    for source in sources:
        assert not imported_modules(source) & set(DEV_ONLY), source.relative_to(ROOT)


def test_funcignore_keeps_dev_tooling_and_local_state_out():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (
        *DEV_ONLY,
        ".venv",
        "node_modules",
        ".data",
        "local.settings.json",
        "infra",
        "docs",
    ):
        assert entry in ignored, entry
    for shipped in ("function_app.py", "host.json", "requirements.txt", "shared"):
        assert shipped not in ignored, shipped


def test_gitignore_keeps_secrets_and_state_out():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for entry in ("local.settings.json", ".venv/", "node_modules/", ".data/"):
        assert entry in ignored, entry
