"""The CLI core: help lists subcommands, errors are one line with exit 2, number lists parse."""

import subprocess
import sys

import pytest

from meg_common.cli import parse_number_list
from meg_common.errors import InputError
from meg_phy.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "meg_phy.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_subcommands_with_one_line_each():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("link", "generate"):
        if name in out.stdout:
            break
    else:
        pytest.fail(f"no subcommands in help:\n{out.stdout}")


def test_unknown_subcommand_is_one_line_exit_2():
    out = run_cli("no-such-command")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "invalid choice" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("text,expected", [
    ("0,2,4", [0.0, 2.0, 4.0]),
    ("-10:20:5", [-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0]),
    ("0:1:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("3", [3.0]),
    ("4:0:-2", [4.0, 2.0, 0.0]),
])
def test_number_lists_parse(text, expected):
    assert parse_number_list(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "0:10", "0:10:0", "0:10:-1", "nan", "1,inf"])
def test_bad_number_lists_raise_input_error(text):
    with pytest.raises(InputError):
        parse_number_list(text, "--snr-db")


def test_input_error_in_a_command_is_one_line(capsys, monkeypatch):
    import meg_phy.cli as cli

    def boom(args):
        raise InputError("--thing 7: must be at most 5; pass a smaller value")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    p = sub.add_parser("boom")
    p.set_defaults(func=boom)
    assert main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "meg-phy: error: --thing 7: must be at most 5; pass a smaller value"


def test_command_group_without_subcommand_is_a_usage_error():
    out = run_cli("link")
    assert out.returncode == 2
    assert out.stderr.strip() == "meg-phy link: error: a subcommand is required (see meg-phy link --help)"


def test_results_are_written_readable_and_atomically(tmp_path):
    import os
    import stat

    from meg_common.io import atomic_write_json, read_json

    target = atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert read_json(target) == {"a": 1}
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH, oct(mode)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def _all_parsers(parser, path=()):
    """(command path, parser) for the root parser and every subcommand, recursively."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*path, name))


def _number_options(kind):
    from meg_phy.cli import build_parser

    found = []
    for path, parser in _all_parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.type is None:
                continue
            is_list = getattr(action.type, "__name__", "").startswith("--")  # number_list(name) parsers
            if (kind == "list" and is_list) or (kind == "float" and action.type is float):
                found.append((path, parser, action))
    return found


def _required(parser, skip):
    """Placeholder values for the other arguments a subcommand requires, so parse_args reaches the option."""
    argv = []
    for action in parser._actions:
        if action is skip or action.nargs == 0 or not (action.required or not action.option_strings):
            continue
        if action.option_strings:
            argv += [action.option_strings[0], "x"]
        elif action.nargs is None:
            argv.append("x")
    return argv


@pytest.mark.parametrize("text, expected", [("-5,0,5", [-5.0, 0.0, 5.0]), ("-10:10:10", [-10.0, 0.0, 10.0]),
                                            ("-5", [-5.0]), ("-2.5,-1e-1", [-2.5, -0.1])])
def test_every_number_list_option_takes_negative_values_as_typed(text, expected):
    from meg_phy.cli import build_parser

    options = _number_options("list")
    assert {tuple(p) for p, _, _ in options} >= {("link", "sweep"), ("reproduce",)}
    for path, parser, action in options:
        argv = [*path, action.option_strings[0], text, *_required(parser, action)]
        args = build_parser().parse_args(argv)
        assert getattr(args, action.dest) == expected, argv


def test_every_number_option_takes_a_negative_value():
    from meg_phy.cli import build_parser

    options = _number_options("float")
    assert len(options) > 10
    for path, parser, action in options:
        argv = [*path, action.option_strings[0], "-3.5", *_required(parser, action)]
        args = build_parser().parse_args(argv)
        assert getattr(args, action.dest) == -3.5, argv


def test_negative_snr_list_runs_a_link_sweep(tmp_path):
    out = subprocess.run([sys.executable, "-m", "meg_phy.cli", "link", "sweep", "--snr-db", "-5,0", "--code", "none",
                          "--k", "64", "--max-frames", "1", "--batch", "2", "--no-progress", "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    points = json.loads((tmp_path / "s" / "sweep.json").read_text())["points"]
    assert [p["snr_db"] for p in points] == [-5.0, 0.0]
