"""`modalgraph` run in-process through its real entry point, for the CLI tests."""

from __future__ import annotations

import sys

import pytest


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """Run `modalgraph ARGS`; returns (exit code, out, err). Tables are drawn 200 columns wide, so
    a row is one line whatever the terminal."""
    from agent.cli.main import main

    monkeypatch.setattr(sys, "argv", ["modalgraph", *args])
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
