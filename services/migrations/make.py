"""Write a new migration, for SQLite and PostgreSQL at once, from the models (a developer tool).

    python -m services.migrations.make NAME     # the models' changes since the newest migration
    python -m services.migrations.make --init   # the baseline (only when there is no migration)

aerich writes the SQL: offline (no database needed), by diffing the models against the newest
migration file's ``MODELS_STATE``. Its files hold one dialect's SQL, so this tool runs aerich once
per dialect, each in a child process (aerich and tortoise keep global state), and writes one file
whose ``upgrade(db)`` returns the SQL for ``db.capabilities.dialect``. Read the file before
committing it: aerich's diff is a draft (a rename, for example, comes out as a drop and an add).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from services.migrations.runner import APP, MIGRATIONS_DIR, known_migrations

DIALECTS = {
    "sqlite": "sqlite://{tmp}/draft.db",
    # Never connected: tortoise opens the pool on the first query, and aerich offline makes none.
    "postgres": "postgres://draft@127.0.0.1:9/draft",
}

_FILE = '''# ruff: noqa: N999 (aerich names migration files "{{number}}_{{timestamp}}_{{name}}.py")
"""imgate migration {version}.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {{
{upgrade}
}}

DOWNGRADE = {{
{downgrade}
}}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    {models_state}
)
'''


async def _draft(dialect: str, name: str | None, workdir: Path) -> dict[str, str]:
    """In a child process: aerich's migration for one dialect, as {version, upgrade, downgrade, state}."""
    from aerich.migrate import Migrate
    from aerich.utils import get_formatted_compressed_data, get_models_describe, import_py_file
    from tortoise import Tortoise, connections
    from tortoise.utils import get_schema_sql

    from services.db import MODEL_MODULES

    location = workdir / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location / APP, ignore=shutil.ignore_patterns("__pycache__"))
    config = {"connections": {"default": DIALECTS[dialect].format(tmp=workdir)},
              "apps": {APP: {"models": MODEL_MODULES, "default_connection": "default"}},
              "use_tz": True, "timezone": "UTC"}
    await Tortoise.init(config=config)
    try:
        state = get_formatted_compressed_data(get_models_describe(APP))
        if name is None:  # the baseline: the whole schema, idempotent (IF NOT EXISTS)
            return {"version": "0_init.py", "upgrade": get_schema_sql(connections.get("default"), safe=True),
                    "downgrade": "", "state": state}
        await Migrate.init(config, APP, str(location), offline=True)
        version = await Migrate.migrate(name, empty=False, no_input=True, offline=True)
        if not version:
            return {"version": "", "upgrade": "", "downgrade": "", "state": state}
        module = import_py_file(location / APP / version)
        db = connections.get("default")
        def tidy(sql: str) -> str:  # aerich joins statements with ";\n" and its file's indentation
            return "\n".join(line.strip() for line in sql.strip().splitlines())

        return {"version": version, "upgrade": tidy(await module.upgrade(db)),
                "downgrade": tidy(await module.downgrade(db)), "state": state}
    finally:
        await Tortoise.close_connections()


def _block(sql: dict[str, str]) -> str:
    """The dict's entries: raw strings (tortoise escapes ``/`` in SQLite comments as ``\\/``)."""
    return "\n".join(f'    "{dialect}": r"""\n{textwrap.indent(text.strip(), " " * 8)}\n    """,'
                     for dialect, text in sql.items())


def write(name: str | None) -> Path | None:
    """Write the migration file; None when the models did not change."""
    existing = known_migrations()
    if name is None and existing:
        msg = f"there are migrations already ({existing[0].version} ...): give a name for a new one"
        raise SystemExit(msg)
    if name is not None and not existing:
        raise SystemExit("there is no baseline yet: run with --init first")
    drafts = {}
    for dialect in DIALECTS:
        args = [sys.executable, "-m", "services.migrations.make", "--child", dialect]
        out = subprocess.run([*args, *(["--name", name] if name else [])], check=True, capture_output=True,
                             text=True)
        drafts[dialect] = json.loads(out.stdout.strip().splitlines()[-1])
    if not any(d["upgrade"].strip() for d in drafts.values()):
        return None
    states = {d["state"] for d in drafts.values()}
    if len(states) != 1:
        raise SystemExit("aerich described the models differently per dialect; write this migration by hand")
    number = 0 if name is None else int(existing[-1].version.split("_")[0]) + 1
    version = f"{number}_{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}_{name or 'init'}.py"
    path = MIGRATIONS_DIR / version
    path.write_text(_FILE.format(
        version=version.removesuffix(".py"),
        upgrade=_block({d: drafts[d]["upgrade"] for d in DIALECTS}),
        downgrade=_block({d: drafts[d]["downgrade"] for d in DIALECTS}),
        models_state=states.pop()), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.migrations.make", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="what the migration does, e.g. notifications_uid_id")
    parser.add_argument("--init", action="store_true", help="write the baseline migration")
    parser.add_argument("--child", choices=sorted(DIALECTS), help=argparse.SUPPRESS)
    parser.add_argument("--name", dest="child_name", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(_draft(args.child, args.child_name, Path(tmp)))))
        return 0
    if bool(args.init) == bool(args.name):
        parser.error("give either NAME or --init")
    if args.name and not args.name.isidentifier():
        parser.error("NAME: letters, digits and _ (e.g. notifications_uid_id)")
    path = write(None if args.init else args.name)
    print(f"wrote {path}" if path else "no changes: the models match the newest migration")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
