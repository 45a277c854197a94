"""The layering rules, checked on the source (every import statement, including those inside
functions): anyone can re-run them, and a change that breaks one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute imports)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def test_imports_of_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import a.b\n\ndef f():\n    from c.d import e\n")
    assert imports_of(source) == {"a.b", "c.d"}


def test_the_broker_imports_no_service_and_no_bridge() -> None:
    """The broker knows users only through its auth interface (broker/auth.py, implemented by the
    user service) and knows no IM topic (the bridge's ACL rules are injected)."""
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "broker").rglob("*.py"))
        for module in imports_of(path)
        if module.split(".")[0] in ("services", "bridge", "imgate", "tortoise")
    }
    assert offending == set()


def test_the_sans_io_router_loads_no_database_code() -> None:
    """bridge/router.py and bridge/wire.py turn bytes into commands and nothing else: importing
    them (in a fresh interpreter) loads no ORM."""
    import subprocess
    import sys

    probe = "import sys, bridge.router, bridge.wire; print(sorted(m for m in sys.modules if m.startswith('tortoise')))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "[]"
