"""The benchmarks are not run by the suite (they live in bench/ and take minutes), but each of
their modules must at least import: a broken one was once found only when a benchmark run
failed. Importing runs no benchmark (every module keeps its work behind main())."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
MODULES = sorted(
    ".".join(path.relative_to(BENCH.parent).with_suffix("").parts)
    for path in BENCH.rglob("*.py") if path.name != "__main__.py"
)


def test_every_bench_module_is_found() -> None:
    assert "bench.serve_broker" in MODULES and "bench.im_1to1" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_bench_module_imports(module: str) -> None:
    importlib.import_module(module)
