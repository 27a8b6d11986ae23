"""Every `sscard ...` command the operator's documents show exists as written: its subcommand, each option it
names, and no argument given to a command that takes none (session 27: docs/API.md told the operator to run
`sscard user token USERNAME`, which answers "Got unexpected extra argument"; the command takes --username)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from sscard.cli import _register_area_commands
from sscard.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "docs/API.md", "docs/OPERATIONS.md", "docs/ISO8583.md")


def _spans() -> list[tuple[str, str]]:
    """(document, command) for every `sscard ...` in inline code or in a sh block's lines."""
    found = []
    for name in DOCUMENTS:
        text = (ROOT / name).read_text(encoding="utf-8")
        for block in re.findall(r"```sh\n(.*?)```", text, re.S):
            for line in block.splitlines():
                line = line.split("#")[0]
                for part in re.findall(r"(?:^|[;&]\s*|\s)(sscard\s[^;&|]*)", line):
                    found.append((name, part.strip()))
        for span in re.findall(r"`(sscard [^`]*)`", text):
            found.append((name, span))
    return found


def _root():
    if not any(c.name == "backup" for c in cli_app.registered_commands):
        _register_area_commands()
    return typer.main.get_command(cli_app)


def _check(root, command: str) -> str | None:
    try:
        words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
    except ValueError:
        return None
    node, words = root, words[1:]
    while hasattr(node, "commands") and words and words[0] in node.commands:
        node, words = node.commands[words[0]], words[1:]
    if hasattr(node, "commands"):
        return None  # a group named alone, or an elided list of its commands ("partitions ensure|status")
    options = {opt: param for param in node.params for opt in (*param.opts, *param.secondary_opts)}
    takes_arguments = any(param.param_type_name == "argument" for param in node.params)
    expects_value = False
    for word in words:
        if expects_value:
            expects_value = False
            continue
        if word.startswith("--"):
            name = word.split("=")[0]
            if name not in options:
                return f"{command!r}: no option {name}"
            expects_value = "=" not in word and not options[name].is_flag
        elif word in ("...", "<", ">") or word.startswith("$") or word.startswith("/"):
            continue
        elif not takes_arguments:
            return f"{command!r}: the command takes no argument, {word!r} given"
    return None


def test_the_documents_show_commands_at_all():
    assert len(_spans()) > 30


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_sscard_command_a_document_shows_exists_as_written(document):
    root = _root()
    commands = []
    for name, command in _spans():
        if name == document:  # `sscard init | demo | serve`: a list of commands, each checked
            first, *others = command.split(" | ")
            commands += [first, *(f"sscard {other}" for other in others)]
    problems = [p for command in commands if (p := _check(root, command))]
    assert problems == []
