"""The layering rules, checked on the source (every import statement, including those inside
functions): anyone can re-run them, and a change that breaks one fails here."""

from __future__ import annotations

import ast
import re
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


# ---- services: one owner per table -----------------------------------------------------------
SERVICES = ROOT / "services"
# Not services: the database layer, migrations and the shared plain helpers every service uses.
_INFRASTRUCTURE = {"db", "errors", "files", "ids", "transactions", "migrations"}


def service_packages() -> list[str]:
    return sorted(p.name for p in SERVICES.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                  and p.name not in _INFRASTRUCTURE)


def package_of(path: Path) -> str:
    return path.relative_to(SERVICES).parts[0]


def test_no_service_imports_another_services_models() -> None:
    """A service reads another service's table only by calling that service (and gets dataclasses
    back): no ``services.<other>.models`` import, anywhere in ``services/``."""
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted(SERVICES.rglob("*.py"))
        for module in imports_of(path)
        if module.startswith("services.") and module.endswith(".models") and len(module.split(".")) == 3
        and module.split(".")[1] != package_of(path)
    }
    assert offending == set()


def tables_by_package() -> dict[str, str]:
    """Each table (a model's ``Meta.table``) and the service package whose models define it."""
    owner: dict[str, str] = {}
    for models in sorted(SERVICES.glob("*/models.py")):
        for node in ast.walk(ast.parse(models.read_text())):
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["table"] \
                    and isinstance(node.value, ast.Constant):
                assert node.value.value not in owner, f"table {node.value.value} defined twice"
                owner[node.value.value] = package_of(models)
    return owner


_SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+([a-z_]+)", re.IGNORECASE)


def test_raw_sql_names_only_the_packages_own_tables() -> None:
    """What the ORM check above cannot see: a table named in hand-written SQL belongs to the
    package whose code holds the SQL."""
    owner = tables_by_package()
    assert {"messages", "members", "conversations", "message_events", "push_jobs"} <= set(owner)
    offending = set()
    for path in sorted(SERVICES.rglob("*.py")):
        if package_of(path) in _INFRASTRUCTURE or path.name == "embedded.py":  # (search's own SQLite file)
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for table in _SQL_TABLE.findall(node.value):
                    if table in owner and owner[table] != package_of(path):
                        offending.add(f"{path.relative_to(ROOT)}: {table} (owned by {owner[table]})")
    assert offending == set()


def test_the_service_packages_depend_on_each_other_without_cycles() -> None:
    """conversations <- messages <- groups/push/search, and so on: a package never needs, even
    indirectly, a package that needs it."""
    packages = service_packages()
    needs: dict[str, set[str]] = {p: set() for p in packages}
    for path in sorted(SERVICES.rglob("*.py")):
        here = package_of(path)
        if here not in needs:
            continue
        for module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] in needs and parts[1] != here:
                needs[here].add(parts[1])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in needs[start])

    cycles = sorted(p for p in packages if reaches(p, p, {p}))
    assert cycles == [], {p: sorted(needs[p]) for p in cycles}


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    """The SQL pattern and the import reader find what they look for."""
    assert _SQL_TABLE.findall("SELECT x FROM members m JOIN conversations c ON 1") == ["members", "conversations"]
    source = tmp_path / "m.py"
    source.write_text("from services.messages.models import Message\n")
    assert imports_of(source) == {"services.messages.models"}
