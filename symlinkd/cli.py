"""Command line: ``symlinkd scan|run|undo|history|hold list|hold release|quarantine purge|
config check|demo``.

Exit codes: 0 all links healthy · 1 problems found (or fixed) · 2 usage or configuration error ·
3 refused for safety (a mount not ok, a plan over the limits, the state directory held by another
symlinkd) · 4 unexpected internal error (one line; ``--debug`` for the traceback) ·
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from symlinkd import __version__
from symlinkd.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    effective_config_text,
    load_settings,
)
from symlinkd.errors import ConfigError, StateLocked, UnsafePlan
from symlinkd.settings import Settings
from symlinkd.statefail import StateError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED = 4, 130

# Commands import their room lazily (noqa PLC0415 below): `config check` and `--version` must
# not pay for, or break on, the scan engine, the daemon or the journal.


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # SIGTERM (kubectl delete, a timeout) ends a command like Ctrl-C does: through
    # KeyboardInterrupt, so the action in hand finishes and no temporary link is left behind.
    # (The daemon installs its own handlers.)
    previous = _interrupt_on_sigterm()
    try:
        return handler(args)
    except ConfigError as exc:
        _print_config_error(exc, args)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"symlinkd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (UnsafePlan, StateLocked) as exc:
        print(f"symlinkd: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StateError as exc:  # a full or read-only state disk: one line, path and errno
        print(f"symlinkd: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("symlinkd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `symlinkd scan --json | head`: the reader left; say nothing more, and keep Python's
        # shutdown from raising again while flushing stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEMS
    except OSError as exc:  # the environment: a state dir we cannot create, a full disk, EACCES
        _maybe_traceback(args)
        print(f"symlinkd: error: {exc} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - the edge: one line, not a traceback, for operators
        _maybe_traceback(args)
        print(f"symlinkd: internal error: {type(exc).__name__}: {exc} "
              "(--debug shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_Handler = Callable[[int, FrameType | None], Any] | int


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> _Handler | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return previous


def _maybe_traceback(args: argparse.Namespace) -> None:
    if getattr(args, "debug", False) or os.environ.get("SYMLINKD_DEBUG"):
        traceback.print_exc()


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help=f"YAML config (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    common.add_argument("--debug", action="store_true", help="tracebacks for internal errors")

    parser = argparse.ArgumentParser(
        prog="symlinkd",
        description="Keeps the symlink farm of a debrid media stack healthy.",
        epilog="exit codes: 0 healthy, 1 problems found or fixed, 2 usage/config error, "
               "3 refused for safety, 4 internal error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"symlinkd {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    scan = sub.add_parser("scan", parents=[common],
                          help="judge every link (read-only unless --apply)")
    scan.add_argument("paths", nargs="*", metavar="PATH",
                      help="only these subtrees/links of the farm (relative: to the current "
                           "directory inside the farm, else to the farm)")
    mode = scan.add_mutually_exclusive_group()
    # The default; spelled out because admins type it (and scripts say what they mean).
    mode.add_argument("--dry-run", action="store_true",
                      help="only report what would be done (the default; not with --apply)")
    mode.add_argument("--apply", action="store_true", help="carry out the plan (relink, prune)")
    scan.add_argument("--force", action="store_true",
                      help="with --apply: carry out a plan over the safety limits")
    scan.add_argument("--json", action="store_true", help="print one JSON document")
    scan.add_argument("--all", action="store_true", help="list healthy links too")
    scan.add_argument("--no-notify", action="store_true", help="tell no media server")
    scan.set_defaults(handler=cmd_scan)

    run = sub.add_parser("run", parents=[common], help="the daemon")
    run.set_defaults(handler=cmd_run)

    undo = sub.add_parser("undo", parents=[common], help="put back every link a run changed")
    undo.add_argument("run_id", metavar="RUN_ID")
    undo.add_argument("--json", action="store_true")
    undo.set_defaults(handler=cmd_undo)

    history = sub.add_parser("history", parents=[common], help="list past runs")
    history.add_argument("--json", action="store_true")
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    history.set_defaults(handler=cmd_history)

    _add_hold_commands(sub, common)

    quarantine = sub.add_parser("quarantine", help="the folder pruned links go to")
    qsub = quarantine.add_subparsers(title="commands", metavar="COMMAND")
    purge = qsub.add_parser("purge", parents=[common], help="delete old quarantined links")
    purge.add_argument("--older-than", type=_non_negative_float, required=True, metavar="DAYS")
    purge.add_argument("--apply", action="store_true", help="delete (default: only list)")
    purge.set_defaults(handler=cmd_quarantine_purge)

    config = sub.add_parser("config", help="configuration")
    csub = config.add_subparsers(title="commands", metavar="COMMAND")
    check = csub.add_parser("check", parents=[common],
                            help="validate; print the effective config, secrets redacted")
    check.set_defaults(handler=cmd_config_check)

    demo = sub.add_parser("demo", parents=[common],
                          help="build a throw-away farm in a temp dir and scan it")
    demo.add_argument("--apply", action="store_true", help="repair the demo farm for real")
    demo.add_argument("--keep", action="store_true", help="keep the temp dir to look around")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo)
    return parser


def _add_hold_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    hold = sub.add_parser("hold", help="links an undo put back, which symlinkd leaves alone")
    hsub = hold.add_subparsers(title="commands", metavar="COMMAND")
    hold_list = hsub.add_parser("list", parents=[common], help="list the held links")
    hold_list.add_argument("--json", action="store_true")
    hold_list.set_defaults(handler=cmd_hold_list)
    release = hsub.add_parser("release", parents=[common],
                              help="let symlinkd act on held links again")
    release.add_argument("paths", nargs="*", metavar="PATH",
                         help="held links (relative: to the current directory inside the "
                              "farm, else to the farm)")
    release.add_argument("--all", action="store_true", help="release every hold")
    release.set_defaults(handler=cmd_hold_release)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError("must be a number of days, 0 or more")
    return value


# --- commands ---------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, os.environ)


def _configure_logging(settings: Settings, args: argparse.Namespace) -> None:
    from symlinkd.logs import configure_logging, settings_secrets  # noqa: PLC0415

    level = logging.INFO if args.verbose else logging.WARNING
    configure_logging(secrets=settings_secrets(settings), stream=sys.stderr, level=level)


def cmd_scan(args: argparse.Namespace) -> int:
    settings = _settings(args)
    paths = scan_paths(args.paths, settings.farm, os.getcwd(), os.path.realpath(settings.farm))
    if not os.path.isdir(settings.farm):
        raise UsageError(f"the farm {settings.farm} is not a directory (see 'farm' in the config)")
    _configure_logging(settings, args)
    from symlinkd.scan_cmd import run_scan  # noqa: PLC0415

    return run_scan(settings, paths, args)


def scan_paths(
    paths: Sequence[str], farm: str, cwd: str, real_farm: str | None = None
) -> tuple[str, ...]:
    """Absolute, normalised paths inside the farm, spelled under ``farm``. A relative path is
    taken from the current directory when that lies inside the farm (shell completion), else
    from the farm. ``real_farm``: the farm with symlinks resolved (a farm configured through a
    symlink, /mnt/media/stream -> /mnt/nas/stream, while getcwd() reports the real path)."""
    root = os.path.normpath(farm)
    real = os.path.normpath(real_farm) if real_farm else root

    def in_farm(path: str) -> str | None:
        path = os.path.normpath(path)
        if _inside(path, root):
            return path
        if _inside(path, real):
            return root + path[len(real):]
        return None

    base = in_farm(cwd) or root
    out: list[str] = []
    for raw in paths:
        path = in_farm(os.path.join(base, raw))
        if path is None:
            raise UsageError(f"{raw!r} is not inside the farm ({root})")
        out.append(path)
    return tuple(dict.fromkeys(out))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from symlinkd.daemon.app import run_daemon  # noqa: PLC0415

    code: int = run_daemon(settings, args.config)
    return code


def cmd_undo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings, args)
    from symlinkd.journal_cmds import cmd_undo as undo  # noqa: PLC0415

    code: int = undo(settings, args.run_id, as_json=args.json)
    return code


def cmd_history(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from symlinkd.journal_cmds import cmd_history as history  # noqa: PLC0415

    code: int = history(settings, as_json=args.json, limit=args.limit)
    return code


def cmd_hold_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from symlinkd.hold_cmds import cmd_hold_list as hold_list  # noqa: PLC0415

    code: int = hold_list(settings, as_json=args.json)
    return code


def cmd_hold_release(args: argparse.Namespace) -> int:
    if bool(args.paths) == args.all:
        raise UsageError("hold release: give the held PATHs, or --all (not both)")
    settings = _settings(args)
    paths = scan_paths(args.paths, settings.farm, os.getcwd(), os.path.realpath(settings.farm))
    from symlinkd.hold_cmds import cmd_hold_release as release  # noqa: PLC0415

    code: int = release(settings, paths, release_all=args.all)
    return code


def cmd_quarantine_purge(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings, args)
    from symlinkd.journal_cmds import cmd_quarantine_purge as purge  # noqa: PLC0415

    code: int = purge(settings, older_than_days=args.older_than, apply=args.apply)
    return code


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    source = args.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    if not os.path.exists(source):
        source = "defaults (no config file)"
    sys.stdout.write(f"# symlinkd {__version__}: configuration is valid\n"
                     f"# source: {source} + SYMLINKD_* environment; secrets by file, never "
                     "by value\n")
    sys.stdout.write(effective_config_text(settings))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from symlinkd.demo import run_demo  # noqa: PLC0415

    return run_demo(apply=args.apply, keep=args.keep, as_json=args.json, verbose=args.verbose)


def _print_config_error(exc: ConfigError, args: argparse.Namespace) -> None:
    source = getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    count = len(exc.problems)
    lines = [f"symlinkd: {count} configuration problem{'s' if count != 1 else ''} ({source}):"]
    lines += [f"  At '{key}': {msg}" if key else f"  {msg}" for key, msg in exc.problems]
    print("\n".join(lines), file=sys.stderr)
