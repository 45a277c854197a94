"""The commands and outputs the README and docs/ show, for the tests that run them as written.

A page marks a fenced block with ``<!-- NAME:start -->`` before it and ``<!-- NAME:end -->``
after it; :func:`block` returns its text. Shown outputs use ``…`` where a run differs (ids,
times): :func:`shown` turns such a line into a pattern that the real line must match whole."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def block(page: str, name: str) -> str:
    """The text inside the fenced block marked NAME on ``page`` (a path from the repository's
    root, e.g. ``"README.md"`` or ``"docs/scale-out.md"``)."""
    text = (ROOT / page).read_text()
    found = re.search(rf"<!-- {re.escape(name)}:start -->\s*```[a-z]*\n(.*?)```\s*<!-- {re.escape(name)}:end -->",
                      text, re.DOTALL)
    assert found, f"{page} has no {name} block"
    return found.group(1)


# In a shown line: a quoted string with … in it is any string, a value that is … or a number cut
# by … (right after a colon) is any number, and any other … is anything.
_WILD = re.compile(r'(?P<string>"[^",:]*…[^",:]*")|(?<=:)(?P<number>\d*…)|(?P<any>…)')
_MEANS = {"string": '"[^"]*"', "number": r"\d+", "any": ".*"}


def shown(line: str) -> re.Pattern[str]:
    """The pattern a real output line must match for the page's ``line`` to be true of it."""
    parts, end = [], 0
    for wild in _WILD.finditer(line):
        parts += [re.escape(line[end:wild.start()]), _MEANS[str(wild.lastgroup)]]
        end = wild.end()
    parts.append(re.escape(line[end:]))
    return re.compile("".join(parts))


def assert_shown(page_lines: list[str], got: list[str], *, ordered: bool = True) -> None:
    """Each line the page shows matches one line of ``got``, and there are no others (in order,
    unless ``ordered`` is false)."""
    assert len(got) == len(page_lines), f"shown {page_lines}, got {got}"
    if ordered:
        for line, real in zip(page_lines, got, strict=True):
            assert shown(line).fullmatch(real), f"shown: {line}\ngot:   {real}"
        return
    left = list(got)
    for line in page_lines:
        match = next((real for real in left if shown(line).fullmatch(real)), None)
        assert match is not None, f"shown: {line}\nnot among: {left}"
        left.remove(match)


def commented(script: str) -> list[tuple[str, list[str]]]:
    """A block's commands, each with the ``# …`` lines right after it: what the page says it
    prints. A command may continue over lines ending in a backslash."""
    steps: list[tuple[str, list[str]]] = []
    command: list[str] = []
    for line in script.splitlines():
        if line.startswith("# ") and steps and not command:
            steps[-1][1].append(line[2:])
        elif line.strip():
            command.append(line)
            if not line.endswith("\\"):
                steps.append(("\n".join(command), []))
                command = []
    assert not command, f"a command ends in a backslash: {command}"
    return steps
