"""Files that hold users' data are private: directories 0700, files 0600 (the database, its WAL
and shared-memory files, the search index), whatever the process's umask."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

log = logging.getLogger("imgate")

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


_WARNED: set[Path] = set()  # the shared directories warned about


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by this user only. A directory that exists
    already is left as it is (it may be shared, like /tmp), with a warning if others can read it."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and not mode & stat.S_ISVTX and path.resolve() not in _WARNED:
        _WARNED.add(path.resolve())  # once a process: the data dir is checked by each part that uses it
        log.warning("%s is accessible to other users (mode %o): consider chmod 700", path, stat.S_IMODE(mode))


_SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def private_sqlite_file(path: Path) -> None:
    """Create an SQLite database file readable by this user only, before SQLite opens it (SQLite
    gives its WAL and shared-memory files the database file's mode), and tighten an existing one.

    Raises:
        sqlite3.DatabaseError: ``path`` is there and is no SQLite database (a directory, a device,
            a file of something else, e.g. a ``database.url`` pointing at the wrong file): it is
            left as it was, its mode included.
    """
    private_dir(path.parent)
    _check_sqlite_file(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    for p in (path, *(path.with_name(path.name + suffix) for suffix in _SQLITE_COMPANIONS)):
        if p.exists() and stat.S_IMODE(p.stat().st_mode) != 0o600:
            os.chmod(p, 0o600)


def _check_sqlite_file(path: Path) -> None:
    """Nothing there, an empty file (SQLite makes it a database) or an SQLite database: else
    raises sqlite3.DatabaseError naming it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        msg = f"{path} is {kind}, not an SQLite database"
        raise sqlite3.DatabaseError(msg)
    if st.st_size:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_HEADER))
        if head != _SQLITE_HEADER:
            msg = f"{path} is not an SQLite database (it is left as it was)"
            raise sqlite3.DatabaseError(msg)
