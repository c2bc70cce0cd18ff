"""``cloud`` is the only package of the portal that imports the Azure SDKs (``emulator`` and tests aside)."""
from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"cloud", "emulator", "tests"}
SKIPPED = {".venv", "venv", "node_modules", "var", ".git", "__pycache__"}


def azure_imports(path: Path) -> list[str]:
    """``import azure...`` / ``from azure... import`` statements in one file, as "file:line"."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        if any(name == "azure" or name.startswith("azure.") for name in names):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def portal_python_files() -> list[Path]:
    """Every .py file of the repository outside the allowed packages (virtualenvs and caches pruned)."""
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        here = Path(folder)
        subfolders[:] = [d for d in subfolders if d not in SKIPPED and not (here == ROOT and d in ALLOWED)
                         and not d.startswith(".")]
        files += [here / name for name in names if name.endswith(".py")]
    return files


def test_no_module_outside_cloud_imports_azure():
    offenders = [hit for path in portal_python_files() for hit in azure_imports(path)]

    assert offenders == [], f"azure.* imported outside cloud/: {offenders}"


def test_the_scan_sees_the_portal_and_would_catch_an_import(tmp_path):
    assert any(p.parts[-2:] == ("jitportal", "settings") or p.name == "manage.py" for p in
               [q.relative_to(ROOT) for q in portal_python_files()])
    sample = ROOT / "cloud" / "azure.py"

    assert azure_imports(sample)  # the detector finds the gateway's own imports
