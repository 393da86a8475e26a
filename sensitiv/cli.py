"""The `sensitiv` command line: a thin shell over the plugin host and the pipeline.

```
sensitiv [--traceback] [-v | -q] COMMAND [OPTIONS]
sensitiv plugins [--json]        every plugin, its version, what it contributes per hook
```

**Exit codes** (`ExitCode`, like pytest's enumeration):

| code | name             | meaning                                                        |
|------|------------------|----------------------------------------------------------------|
| 0    | `OK`             | done, and every check passed                                   |
| 1    | `UNTRUSTWORTHY`  | the analysis ran, but a diagnostic says its result cannot be trusted (no convergence, a saddle point, a large residual) |
| 2    | `USAGE_ERROR`    | bad command line, config, input file or plugin (the message names it) |
| 3    | `INTERNAL_ERROR` | a bug in sensitiv or a plugin (`--traceback` shows where)      |
| 4    | `PARTIAL`        | an ensemble in which some tasks failed: the result holds the others, `failed_tasks` says why (`--resume --force` retries only the failed ones) |
| 130  | `INTERRUPTED`    | interrupted (Ctrl-C, SIGINT); no partial output file (an ensemble's finished tasks stay in `<output>.parts/` for `--resume`) |
| 143  | `TERMINATED`     | terminated (SIGTERM); as for Ctrl-C                            |

**Adding a command** takes one function: decorate it with `@command`, declare its
arguments with `argument(...)` (the arguments of `ArgumentParser.add_argument`), and
return an `ExitCode`. Errors are raised, not printed: `main` turns a `SensitivError`
into a one-line message and its exit code.

```python
@command("validate", help="check a config without computing",
         arguments=[argument("config", help="the YAML config")])
def validate_command(args: argparse.Namespace) -> ExitCode:
    ...
    return ExitCode.OK
```
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .errors import ConfigError, ConvergenceError, InputError, SensitivError
from .plugins import KINDS, Registry

__all__ = ["ExitCode", "main", "command", "argument", "COMMANDS", "build_parser"]


class ExitCode(enum.IntEnum):
    """Exit status of `sensitiv` (see the module docstring)."""

    OK = 0
    UNTRUSTWORTHY = 1
    USAGE_ERROR = 2
    INTERNAL_ERROR = 3
    PARTIAL = 4
    INTERRUPTED = 130
    TERMINATED = 143


class Terminated(BaseException):
    """Raised in the main thread when `sensitiv` receives SIGTERM, so that the same clean-up
    as for Ctrl-C runs (temporary output removed, an existing output untouched)."""


class _Signals:
    """SIGINT and SIGTERM as exceptions in the main thread, delivered until one lands.

    Python runs a signal handler between two bytecodes of the main thread, wherever they
    are — inside a garbage-collection callback too, where the exception is printed and
    dropped ("Exception ignored in ..."), and the run would go on. So after a signal the
    handler is called again every second (the signal re-sent to this process) until the
    command has stopped; `stop` ends that once the exception was caught where it belongs.
    """

    def __init__(self):
        self.received = None
        self.done = threading.Event()
        self.previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.handle)
        # A signal exception dropped inside a callback is re-sent: not worth a traceback.
        self.unraisable = sys.unraisablehook

        def hook(unraisable):
            if unraisable.exc_type is not None and issubclass(unraisable.exc_type, (KeyboardInterrupt, Terminated)):
                return
            self.unraisable(unraisable)

        sys.unraisablehook = hook

    def handle(self, signum, frame):
        if self.received is None:
            self.received = signum

            def resend():
                while not self.done.wait(1.0):
                    os.kill(os.getpid(), signum)

            threading.Thread(target=resend, daemon=True, name="sensitiv-signal").start()
        if self.done.is_set():
            return
        if signum == signal.SIGTERM:
            raise Terminated()
        raise KeyboardInterrupt()

    def stop(self) -> None:
        self.done.set()
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if self.previous:
            sys.unraisablehook = self.unraisable


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, arguments and the function running it."""

    name: str
    run: Callable[[argparse.Namespace], int]
    help: str
    description: str
    arguments: tuple[tuple[tuple, dict], ...]


#: Subcommands by name, in the order they were declared.
COMMANDS: dict[str, Command] = {}


def argument(*flags: str, **options: Any) -> tuple[tuple, dict]:
    """One `ArgumentParser.add_argument(*flags, **options)` call, for `command(arguments=...)`."""
    return flags, options


def command(
    name: str, *, help: str, description: str | None = None, arguments: Sequence = ()
) -> Callable:
    """Declare a subcommand; the decorated function takes the parsed arguments.

    **Arguments:**

    - `name`: the subcommand (`sensitiv NAME`).
    - `help`: one line for `sensitiv --help`.
    - `description`: the longer text of `sensitiv NAME --help` (default: `help`).
    - `arguments`: `argument(...)` entries.

    **Returns:** the decorator; the function is returned unchanged.
    """

    def register(function: Callable[[argparse.Namespace], int]) -> Callable:
        COMMANDS[name] = Command(name, function, help, description or help, tuple(arguments))
        return function

    return register


def _add_common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # On subcommands the defaults are suppressed so that an option given before the
    # subcommand is not reset by the subparser's default.
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument(
        "--traceback", action="store_true", default=default(False),
        help="show the full traceback of an error instead of one line",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="more log output (repeatable)"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="errors only"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every declared subcommand."""
    parser = argparse.ArgumentParser(
        prog="sensitiv",
        description="Exact sensitivities of equilibria by implicit differentiation.",
        epilog="Exit codes: 0 OK, 1 untrustworthy analysis, 2 usage/config error, "
        "3 internal error, 4 partial ensemble (some tasks failed), 130 interrupted, 143 terminated.",
    )
    parser.add_argument("--version", action="version", version=f"sensitiv {__version__}")
    _add_common_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.description)
        _add_common_options(sub, suppress=True)
        for flags, options in cmd.arguments:
            sub.add_argument(*flags, **options)
        sub.set_defaults(_run=cmd.run)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.ERROR if args.quiet else {0: logging.WARNING, 1: logging.INFO}.get(
        args.verbose, logging.DEBUG
    )
    # -v/-vv raise sensitiv's own loggers (and its first-party plugins'); the libraries'
    # loggers stay at WARNING, so that -vv does not flood the terminal with JAX's internals.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    for name in ("sensitiv", "sensitiv_jaxmd", "sensitiv_ase"):
        logging.getLogger(name).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (an `ExitCode`).

    **Arguments:**

    - `argv`: the arguments after the program name (default: `sys.argv[1:]`).

    **Example:**

    ```python
    from sensitiv.cli import main
    main(["plugins", "--json"])
    ```
    """
    parser = build_parser()
    # The command line as given, for `history` attributes; set when the namespace is made.
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(given, namespace=argparse.Namespace(command_line=given))
    except SystemExit as exit_:  # --help, --version (0) and usage errors (2)
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE_ERROR
    _configure_logging(args)
    signals = _Signals()
    signals.install()
    try:
        return _run_command(args, signals)
    finally:
        signals.stop()


def _mention_parts(args: argparse.Namespace) -> None:
    """After an interrupted ensemble: where its finished tasks are, and how to go on."""
    folder = getattr(args, "_parts_folder", None)
    if folder and os.path.isdir(folder):
        done = sum(name.startswith("task-") for name in os.listdir(folder))
        print(f"sensitiv: {done} finished task(s) kept in {folder}; run the same command with --resume "
              "to analyze only the others", file=sys.stderr)


def _run_command(args: argparse.Namespace, signals: _Signals) -> int:
    try:
        try:
            return ExitCode(int(args._run(args)))
        finally:
            signals.done.set()  # caught here or below: stop re-sending
    except Terminated:
        print("sensitiv: terminated (SIGTERM); nothing was written", file=sys.stderr)
        _mention_parts(args)
        return ExitCode.TERMINATED
    except KeyboardInterrupt:
        print("sensitiv: interrupted", file=sys.stderr)
        _mention_parts(args)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`sensitiv plugins | head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except SensitivError as err:
        if args.traceback:
            traceback.print_exc()
        print(f"sensitiv: error: {err}", file=sys.stderr)
        if isinstance(err, ConvergenceError):
            return ExitCode.UNTRUSTWORTHY
        return ExitCode.USAGE_ERROR
    except Exception as err:
        if args.traceback:
            traceback.print_exc()
            return ExitCode.INTERNAL_ERROR
        print(
            f"sensitiv: internal error: {type(err).__name__}: {err} "
            f"(run again with --traceback for details, and please report it)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL_ERROR


# -- commands ---------------------------------------------------------------------------
# Each command imports the pipeline modules it needs when it runs: the host and the
# config are all `plugins`, `validate` and `schema` need, and the numerical core (jax)
# loads only once `analyze` is past its refusals (tests/test_cheap_commands.py).


@command(
    "plugins",
    help="list the installed plugins and what each contributes",
    description="List every plugin found in the entry-point group `sensitiv` (or selected "
    "with SENSITIV_PLUGINS), its version and distribution, and the energy models, "
    "equilibrium solvers, optimality conditions and structure readers it contributes. "
    "Exits with 2 when a plugin is broken (it is listed with its error).",
    arguments=[argument("--json", action="store_true", help="print JSON instead of text")],
)
def plugins_command(args: argparse.Namespace) -> ExitCode:
    registry = Registry(strict=False)
    description = registry.to_dict()
    description["errors"] = [{"plugin": name, "error": message} for name, message in registry.errors]
    if args.json:
        json.dump(description, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_plugins_text(description))
    if registry.errors:
        if args.json:
            for _, message in registry.errors:
                print(f"sensitiv: error: {message}", file=sys.stderr)
        else:
            broken = ", ".join(name for name, _ in registry.errors)
            print(f"sensitiv: error: broken plugins (listed above): {broken}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    return ExitCode.OK


def _plugins_text(description: dict) -> str:
    lines = []
    plugins = description["plugins"]
    if description["selection"] is not None:
        how = f"selected by SENSITIV_PLUGINS: {', '.join(description['selection'])}"
    elif not description["autoload"]:
        how = "autoload disabled by SENSITIV_DISABLE_PLUGIN_AUTOLOAD"
    else:
        how = "entry-point group 'sensitiv'"
    lines.append(f"sensitiv {description['sensitiv_version']}: {len(plugins)} plugin(s) ({how})")
    for plugin in plugins:
        origin = plugin["entry_point"] or f"{plugin['module']}, registered from code"
        dist = (
            f"{plugin['distribution']} {plugin['version'] or ''}".strip()
            if plugin["distribution"]
            else (plugin["version"] or "no distribution")
        )
        lines += ["", f"{plugin['name']}  {dist}  ({origin})"]
        if not plugin["hooks"]:
            lines.append("  (contributes nothing)")
        for kind in KINDS:
            records = plugin["contributions"].get(kind.hook)
            if records is None:
                continue
            lines.append(f"  {kind.plural} ({kind.hook}):")
            if not records:
                lines.append("    (none)")
            width = max((len(r["name"]) for r in records), default=0)
            for record in records:
                text = f"    {record['name']:<{width}}  {record['description']}".rstrip()
                if record.get("extensions"):
                    text += f"  [{' '.join(record['extensions'])}]"
                lines.append(text)
                for param in record.get("parameters", []):
                    shape = "(" + ", ".join(map(str, param["shape"])) + ")" if param["shape"] else "scalar"
                    flag = "" if param["differentiable"] else ", not differentiable"
                    lines.append(
                        f"    {'':<{width}}    - {param['name']} {shape} [{param['units']}]"
                        f" default {param['default']}{flag}"
                    )
    for error in description.get("errors", []):
        lines += ["", f"{error['plugin']}  BROKEN: {error['error']}"]
    return "\n".join(lines) + "\n"


# -- analysis commands (pipeline) ----------------------------------------------------------

_SET = argument(
    "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
    help="override a config value (YAML), e.g. --set structure.generator.n_atoms=32 (repeatable)",
)


_NO_CACHE = argument(
    "--no-cache", action="store_true",
    help="do not read or write the persistent compilation cache (default: on, in "
    "$SENSITIV_CACHE_DIR or ~/.cache/sensitiv; SENSITIV_NO_CACHE=1 also turns it off)",
)


def _use_cache(args: argparse.Namespace) -> None:
    """Turn the persistent compilation cache on unless `--no-cache`/`SENSITIV_NO_CACHE` say no."""
    from . import cache  # lazy: imports jax, which only the computing commands need

    if getattr(args, "no_cache", False) or not cache.enabled_by_environment():
        cache.disable()
    else:
        cache.enable()


def _verbosity(args: argparse.Namespace) -> int:
    return 0 if getattr(args, "quiet", False) else 1 + int(getattr(args, "verbose", 0) or 0)


@command(
    "analyze",
    help="relax a structure and write its sensitivities dx*/dθ to NetCDF",
    description="Run the analysis a YAML config describes (structure → model → equilibrium → "
    "Jacobian → observables) and write one NetCDF-4 file. Exit codes: 0 trustworthy result, "
    "1 result written but flagged (saddle, singular, unconverged solve) or equilibrium not "
    "converged (nothing written), 2 config/input error, 3 internal error, 130 interrupted.",
    arguments=[
        argument("config", help="the YAML config"),
        argument("-o", "--output", help="output path (overrides output.path)"),
        argument("--force", action="store_true", help="replace an existing output"),
        argument("--dry-run", action="store_true",
                 help="validate, read the structure and print the resolved config; compute nothing"),
        argument("--scheduler", help="Dask scheduler address, or 'local' for a local cluster "
                 "of spawned workers (ensembles; needs sensitiv[dask])"),
        argument("--json", action="store_true",
                 help="print the closing summary as JSON on stdout (progress stays on stderr)"),
        argument("--resume", action="store_true",
                 help="continue an interrupted or partial ensemble: reuse the tasks kept in "
                 "<output>.parts/ and run only the others"),
        _NO_CACHE,
        _SET,
    ],
)
def analyze_command(args: argparse.Namespace) -> ExitCode:
    from .pipeline import checkpoint, config, output  # lazy (see the note above the commands)

    cfg = config.load(args.config, overrides=args.overrides)
    cfg = cfg.with_output(path=args.output)  # so the dry run and the stored config name it
    verbosity = _verbosity(args)
    resumable = args.resume and checkpoint.resumable(cfg.output.path)
    args._parts_folder = checkpoint.parts_folder(cfg.output.path)
    path = output.check_output_path(cfg.output.path, args.force or cfg.output.overwrite or resumable,
                                    cfg.input_files)
    if args.dry_run:
        # lazy: a dry run computes nothing
        from .pipeline import report
        from .pipeline.structure import read_structures
        from .pipeline.theta import check_parameters
        from .plugins import get_registry

        structures = read_structures(cfg.structure)
        check_parameters(structures, cfg, get_registry())
        sys.stdout.write(cfg.to_yaml())
        if verbosity:
            atoms = ", ".join(str(s.n_atoms) for s in structures[:10])
            print(f"# dry run: {len(structures)} structure(s) ({atoms} atoms); would write {path}",
                  file=sys.stderr)
            shown: set = set()
            for s in structures:  # each distinct reading once (frames of one file share theirs)
                lines = report.reading_lines(s, indent="#   ")
                if tuple(lines) not in shown and len(shown) < 3:
                    shown.add(tuple(lines))
                    print(f"# {s.source}" + (f" (frame {s.frame})" if s.frame else "") + ":", file=sys.stderr)
                    print("\n".join(lines), file=sys.stderr)
        return ExitCode.OK
    # Lazy: the numerical core (jax) loads here, after every refusal above had its chance.
    from .pipeline import report
    from .pipeline._progress import Progress
    from .pipeline.run import run_config

    _use_cache(args)
    outcome = run_config(
        cfg, output_path=path, force=args.force, progress=Progress(verbosity=verbosity),
        argv=["sensitiv"] + args.command_line, scheduler=args.scheduler, resume=args.resume,
    )
    # The summary is the command's result: stdout. Progress and errors went to stderr.
    if args.json:
        _print_json(report.summary_record(outcome.path, outcome.analyses, outcome.timings, outcome.failures))
    elif verbosity:
        print(report.analysis_summary(outcome.path, outcome.analyses, outcome.timings, outcome.failures))
    if outcome.failures:
        for failure in outcome.failures:
            print(f"sensitiv: error: task failed: {failure}", file=sys.stderr)
        print(f"sensitiv: {len(outcome.failures)} of {len(outcome.failures) + len(outcome.analyses)} tasks "
              f"failed; {outcome.path} holds the others (attribute failed_tasks). Fix the cause and run "
              f"again with --resume --force to retry only the failed ones", file=sys.stderr)
        return ExitCode.PARTIAL
    return ExitCode.OK if outcome.trustworthy else ExitCode.UNTRUSTWORTHY


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


@command(
    "check",
    help="sample θ from the config's uncertainty, re-relax, and compare with the linear propagation",
    description="Brute-force check of the `uncertainty` section: draw θ ~ N(θ̂, Σ), re-relax and "
    "analyze every sample, and compare the sampled covariances, standard deviations and means with "
    "the linear propagation, and each sample's first-order error with its validity range. Exit "
    "codes: 0 agreement, 1 disagreement (the linearization breaks where the report says), "
    "2 config/input error, 3 internal error, 130 interrupted.",
    arguments=[
        argument("config", help="the YAML config (with an uncertainty section)"),
        argument("--samples", type=int, default=32, help="θ samples per structure (default 32)"),
        argument("--seed", type=int, default=0, help="random seed (default 0)"),
        argument("--json", action="store_true", help="print the report as JSON on stdout"),
        _NO_CACHE,
        _SET,
    ],
)
def check_command(args: argparse.Namespace) -> ExitCode:
    from .pipeline import config  # lazy (see the note above the commands)
    from .pipeline._progress import Progress  # lazy (see the note above the commands)

    cfg = config.load(args.config, overrides=args.overrides)
    if cfg.uncertainty is None:
        raise ConfigError(f"{args.config}: check needs an 'uncertainty' section (what to sample)")
    from .pipeline.check import check_config, check_text  # lazy: jax only after the config is valid

    _use_cache(args)
    report = check_config(cfg, samples=args.samples, seed=args.seed, progress=Progress(verbosity=_verbosity(args)))
    if args.json:
        _print_json(dataclasses.asdict(report))
    elif _verbosity(args):
        print(check_text(report))
    return ExitCode.OK if report.agrees else ExitCode.UNTRUSTWORTHY


@command(
    "validate",
    help="check a config and report every error with file:line:column",
    arguments=[argument("config", help="the YAML config"), _SET],
)
def validate_command(args: argparse.Namespace) -> ExitCode:
    from .pipeline import config  # lazy (see the note above the commands)

    try:
        config.load(args.config, overrides=args.overrides)
    except ConfigError as err:
        lines = [str(i) for i in err.issues] if err.issues else [str(err)]
        for line in lines:
            print(line, file=sys.stderr)
        if len(lines) > 1:
            print(f"sensitiv: {len(lines)} errors in {args.config}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if _verbosity(args):
        print(f"{args.config}: valid")
    return ExitCode.OK


@command(
    "schema",
    help="print the config's JSON Schema, with the installed plugins' parts",
    arguments=[argument("--base", action="store_true",
                        help="print only the packaged base schema (no plugin parts)")],
)
def schema_command(args: argparse.Namespace) -> ExitCode:
    from .pipeline import config  # lazy (see the note above the commands)

    schema = config.base_schema() if args.base else config.full_schema()
    json.dump(schema, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return ExitCode.OK


@command(
    "inspect",
    help="print a summary of a result file",
    arguments=[argument("result", help="a NetCDF file written by sensitiv analyze"),
               argument("--json", action="store_true", help="print the summary as JSON")],
)
def inspect_command(args: argparse.Namespace) -> ExitCode:
    from .pipeline import output, report  # lazy (see the note above the commands)

    result = output.open_result(args.result)
    try:
        with output.reading_result(args.result):
            if args.json:
                text = None
                _print_json(report.inspect_record(result, args.result))
            else:
                text = report.inspect_text(result, args.result)
    finally:
        result.close()
    if text is not None:
        print(text)
    return ExitCode.OK


@command(
    "export",
    help="write a result as extended XYZ, a LAMMPS dump or an AMBER NetCDF trajectory (OVITO, ASE, VMD)",
    description="Write the relaxed structure of a result with the per-atom sensitivity vectors "
    "dx*/dθ of each parameter as properties (dx_dtheta_<label>, dx_dtheta_norm_<label>, "
    "dx_dlogtheta_<label>; labels like sigma[0,1] become sigma_0_1). The format follows the "
    "ending: .extxyz/.xyz extended XYZ, .dump/.lammpstrj LAMMPS text dump, .nc AMBER NetCDF-3 "
    "trajectory (Conventions AMBER, what OVITO's and VMD's readers require).",
    arguments=[
        argument("result", help="a NetCDF file written by sensitiv analyze"),
        argument("-o", "--output", required=True, help="the file to write (.extxyz, .dump, .nc)"),
        argument("--format", choices=["extxyz", "lammps-dump", "amber"], help="override the format the ending implies"),
        argument("--frame", type=int, help="one frame (default: every frame)"),
        argument("--parameter", action="append", help="only this θ label (repeatable; default: all)"),
        argument("--structure", type=int, default=0, help="group to export (results with groups)"),
        argument("--force", action="store_true", help="replace an existing file"),
    ],
)
def export_command(args: argparse.Namespace) -> ExitCode:
    from . import io  # lazy (see the note above the commands)
    from .pipeline import output

    result = output.open_result(args.result)
    try:
        ds = _one_group(result, args.structure)
        path = io.export(ds, args.output, args.format, frame=args.frame, parameter=args.parameter,
                         overwrite=args.force)
    finally:
        result.close()
    if _verbosity(args):
        print(f"wrote {path}")
    return ExitCode.OK


def _one_group(result, structure: int):
    """The dataset of a result, or of its group number `structure`."""
    from .pipeline import report  # lazy (see the note above the commands)

    groups = report.result_groups(result)
    if not 0 <= structure < len(groups):
        raise InputError(f"--structure {structure}: the result holds {len(groups)} structure(s)")
    return groups[structure][1]


@command(
    "plot",
    help="draw a result: the field of one parameter on the structure, a radial profile, importance bars",
    description="Draw dx*/dθ of one parameter on the relaxed structure (wrapped into its cell, coloured "
    "by |dx*_i/dθ|; 2-D: particles at their size, every arrow; 3-D: an oblique view with a depth cue "
    "and a slice through the centre, arrows where they do not overlap), a radial profile around the "
    "centre of the response (3-D) or --centre, and one bar per parameter of ‖θ·dx*/dθ‖ on a linear "
    "scale. An untrustworthy result is framed in red with its problems.",
    arguments=[
        argument("result", help="a NetCDF file written by sensitiv analyze"),
        argument("-o", "--output", required=True, help="the figure (.png, .pdf, .svg)"),
        argument("--parameter", help="θ label whose field is drawn (default: the most important)"),
        argument("--frame", type=int, default=0, help="frame to draw (ensembles)"),
        argument("--structure", type=int, default=0, help="group to draw (results with groups)"),
        argument("--centre", "--center", dest="centre",
                 help="centre of the radial profile: X,Y[,Z] in the result's length units, or atom=N"),
        argument("--scale", type=float, help="arrow length per unit sensitivity"),
    ],
)
def plot_command(args: argparse.Namespace) -> ExitCode:
    from .pipeline import output, plot  # lazy (see the note above the commands)

    centre = _centre_argument(args.centre)
    result = output.open_result(args.result)
    try:
        with output.reading_result(args.result):
            path = plot.plot_result(result, args.output, args.parameter, args.frame, args.structure, args.scale,
                                    centre)
    finally:
        result.close()
    if _verbosity(args):
        print(f"wrote {path}", file=sys.stderr)
    return ExitCode.OK


def _centre_argument(text: str | None):
    """`--centre`: `None`, `"atom=N"`, or a list of coordinates."""
    if text is None or text.replace(" ", "").startswith("atom"):
        return text
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--centre {text!r}: give coordinates X,Y[,Z] or atom=N") from None


if __name__ == "__main__":
    sys.exit(main())
