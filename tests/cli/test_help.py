"""Every command's help renders as written: no literal backticks, nothing eaten as markup (Rich reads ``[x]`` as a
style), every option and argument explained, and enumerations offered as choices (a bad value is a usage error,
exit 2, not a traceback)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

import pytest
import typer
from typer.testing import CliRunner

from mitiga_cli.__main__ import app as mitiga
from mitiga_devstack.__main__ import app as devstack
from mitiga_standalone.demo import app as demo

APPS = {"mitiga": mitiga, "demo": demo, "devstack": devstack}


def _commands(app: typer.Typer) -> Iterator[tuple[list[str], Any]]:
    root = typer.main.get_command(app)

    def walk(path: list[str], command: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        if hasattr(command, "commands"):  # a group (Typer carries its own click)
            for name, sub in command.commands.items():
                yield from walk([*path, name], sub)

    yield from walk([], root)


CASES = [(name, path, command) for name, app in APPS.items() for path, command in _commands(app)]


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The values an option's annotation allows (a Literal or an Enum, optional or not); () for any other type."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(annotation)
    return tuple(c for arg in get_args(annotation) if arg is not type(None) for c in _choices(arg))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w.\-\[\],:=/<>|]+", text.replace("`", "")))


@pytest.mark.parametrize(("name", "path", "command"), CASES, ids=[" ".join([c[0], *c[1]]) for c in CASES])
def test_the_help_renders_as_written(name: str, path: list[str], command: Any) -> None:
    result = CliRunner().invoke(APPS[name], [*path, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0, result.output
    shown = result.output
    assert "`" not in shown, shown
    written = (command.help or "").split("\f")[0]
    missing = sorted(w for w in _words(written) if w not in _words(shown))
    assert not missing, f"eaten from the help: {missing}\n{shown}"
    for param in command.params:
        if param.name == "help":
            continue
        helped = getattr(param, "help", None)
        assert helped, f"{' '.join(path)}: {param.name} has no help"
        if " | " in helped:  # an enumeration: the choices are checked by click, not by a traceback later
            assert _choices(param.type_descriptor.annotation), f"{param.name}: {helped} is not a choice"
        for word in _words(helped):
            assert word in _words(shown), f"{param.name}: {word!r} eaten from its help"


def test_a_bad_choice_is_a_usage_error_not_a_traceback() -> None:
    result = CliRunner().invoke(mitiga, ["experiment", "production", "--trigger-policy", "bogus"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "bogus" in result.output
    assert "performance" in result.output  # the choices are named
