"""`sensitiv plugins [--json]` and the command line's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sensitiv import cli
from sensitiv.cli import Command, ExitCode, main
from sensitiv.errors import ConfigError, ConvergenceError, InputError, PluginError
from sensitiv.plugins import ENV_DISABLE_AUTOLOAD, ENV_PLUGINS


@pytest.fixture(autouse=True)
def _only_builtin(monkeypatch):
    # The listing is checked on the builtin plugin alone; importing every installed
    # plugin (jax-md) is the slow integration test's job.
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD, raising=False)
    monkeypatch.setenv(ENV_PLUGINS, "builtin")


def test_exit_codes_are_the_documented_values():
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "UNTRUSTWORTHY": 1, "USAGE_ERROR": 2, "INTERNAL_ERROR": 3, "PARTIAL": 4,
        "INTERRUPTED": 130, "TERMINATED": 143,
    }
    for code in ExitCode:
        assert f"`{code.name}`" in cli.__doc__ and f"| {int(code)} " in cli.__doc__


def test_plugins_json_lists_plugin_version_distribution_and_contributions(capsys):
    assert main(["plugins", "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    (builtin,) = data["plugins"]
    assert builtin["name"] == "builtin" and builtin["distribution"] == "sensitiv"
    assert builtin["version"] == data["sensitiv_version"]
    assert builtin["entry_point"] == "sensitiv.plugins.builtin"
    (reader,) = builtin["contributions"]["sensitiv_structure_readers"]
    assert reader["name"] == "amber-netcdf" and ".nc" in reader["extensions"]
    assert data["selection"] == ["builtin"] and data["errors"] == []


def test_plugins_text_lists_each_hook(capsys):
    assert main(["plugins"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "builtin  sensitiv " in out
    assert "structure readers (sensitiv_structure_readers):" in out
    assert "amber-netcdf" in out and "[.nc .ncdf .netcdf]" in out
    assert "selected by SENSITIV_PLUGINS: builtin" in out


def test_plugins_with_disabled_autoload(monkeypatch, capsys):
    monkeypatch.delenv(ENV_PLUGINS)
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    assert main(["plugins", "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["plugins"] == [] and data["autoload"] is False


def test_plugins_reports_a_broken_selection_with_usage_error(monkeypatch, capsys):
    monkeypatch.setenv(ENV_PLUGINS, "builtin,builtn")
    assert main(["plugins", "--json"]) == ExitCode.USAGE_ERROR
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [p["name"] for p in data["plugins"]] == ["builtin"]
    (error,) = data["errors"]
    assert error["plugin"] == "builtn" and "did you mean 'builtin'" in error["error"]
    assert "sensitiv: error: SENSITIV_PLUGINS: no plugin entry point named 'builtn'" in captured.err

    assert main(["plugins"]) == ExitCode.USAGE_ERROR
    captured = capsys.readouterr()
    assert "builtn  BROKEN:" in captured.out
    assert "broken plugins (listed above): builtn" in captured.err


def test_usage_errors_exit_with_2(capsys):
    assert main([]) == ExitCode.USAGE_ERROR
    assert main(["plugins", "--no-such-flag"]) == ExitCode.USAGE_ERROR
    assert main(["no-such-command"]) == ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_version_and_help_exit_with_0(capsys):
    assert main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("sensitiv ")
    assert main(["plugins", "--help"]) == ExitCode.OK
    assert "--json" in capsys.readouterr().out


def test_options_before_or_after_the_subcommand(capsys):
    # Common options may be given on either side of the subcommand.
    assert main(["-q", "plugins", "--json"]) == ExitCode.OK
    assert main(["plugins", "--json", "--traceback"]) == ExitCode.OK


@pytest.mark.parametrize(
    "error, code, message",
    [
        (ConfigError("config.yaml:3:5: $.model.name: unknown"), ExitCode.USAGE_ERROR, "sensitiv: error: config.yaml:3:5"),
        (InputError("traj.nc: no such file"), ExitCode.USAGE_ERROR, "sensitiv: error: traj.nc"),
        (PluginError("unknown energy model 'x'"), ExitCode.USAGE_ERROR, "sensitiv: error: unknown energy model"),
        (ConvergenceError("FIRE stopped at max|F| = 1e-3"), ExitCode.UNTRUSTWORTHY, "sensitiv: error: FIRE"),
        (ZeroDivisionError("division by zero"), ExitCode.INTERNAL_ERROR, "internal error: ZeroDivisionError"),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "sensitiv: interrupted"),
    ],
)
def test_main_maps_errors_to_exit_codes(monkeypatch, capsys, error, code, message):
    def failing(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "fail", Command("fail", failing, "fails", "fails", ()))
    assert main(["fail"]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if code != ExitCode.INTERRUPTED:
        assert main(["--traceback", "fail"]) == code
        assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    env = dict(os.environ, **{ENV_PLUGINS: "builtin"})
    done = subprocess.run(
        [sys.executable, "-m", "sensitiv.cli", "plugins", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plugins"][0]["name"] == "builtin"
