"""The shape of the code: the core knows no surface, and the ledger has one writer.

`ruff check` (TID251, configured in pyproject.toml) bans Slack's SDKs in bot/ as well; this
test keeps the rule even if that configuration is lost, and checks what ruff can't.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SURFACE_PACKAGES = ("slack_sdk", "slack_bolt")
# Calls that write the runs table; only the ledger (and the store that implements them) make them.
# The lease bookkeeping (bot/leases.py) writes owner, lease_until and stop_requested_by through these too.
RUN_WRITES = ("update_run", "create_run", "renew_leases", "take_over_run", "hand_back_runs", "request_stop")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def core_modules() -> list[Path]:
    return sorted((ROOT / "bot").rglob("*.py"))


def test_the_core_never_imports_slack() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in core_modules()
        for line, module in imported_modules(path)
        if module.split(".")[0] in SURFACE_PACKAGES
    ]
    assert offending == []


def test_only_the_cli_reaches_into_the_slack_edge() -> None:
    """`slack-analyst serve` starts handlers/ (the composition root); nothing else in bot/ may."""
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in core_modules()
        for line, module in imported_modules(path)
        if module.split(".")[0] == "handlers" and path.name != "cli.py"
    ]
    assert offending == []


def test_the_runs_table_is_written_by_the_ledger_alone() -> None:
    writers = set()
    for path in [*core_modules(), *sorted((ROOT / "handlers").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                admits = name == "admit" and isinstance(node.func.value, ast.Name) and node.func.value.id == "store"
                if name in RUN_WRITES or admits:
                    writers.add(str(path.relative_to(ROOT)))
    assert writers == {"bot/ledger.py"}


def test_the_checks_would_catch_an_offender(tmp_path: Path) -> None:
    """The scanners above see imports inside functions and calls on any object."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f(store):\n    from slack_sdk.errors import SlackApiError\n    store.update_run(1)\n")
    assert (2, "slack_sdk.errors") in imported_modules(probe)
    calls = [n for n in ast.walk(ast.parse(probe.read_text())) if isinstance(n, ast.Call)]
    assert any(isinstance(c.func, ast.Attribute) and c.func.attr == "update_run" for c in calls)
