"""Command-line conventions shared by ``diffveri`` and ``vehiclemae`` (argparse only; no heavy imports).

- ``--root`` is the data root of every command that reads or writes one (:func:`add_root`);
- ``--out`` is always the path of the command's main output;
- one spelling per concept (``--img-size``, ``--batch-size``, ``--lr``); an old spelling stays for one release as a
  deprecated alias that prints a warning and still works (:func:`add_alias`, :func:`add_deprecated_command`);
- every command that takes ``--config`` also takes ``--set KEY=VALUE`` and ``--print-config``
  (:func:`add_config_options`, :func:`print_config`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import yaml


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr: the old spelling works for one more release."""
    print(f"warning: {old} is deprecated and will be removed; use {new}", file=sys.stderr)


class _DeprecatedOption(argparse.Action):
    """Does what the option it stands for does (same dest, type, nargs, action), after a warning."""

    def __init__(self, *args: Any, new: str, target: argparse.Action, **kwargs: Any) -> None:
        self.new, self.target = new, target
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None):
        warn_deprecated(str(option), self.new)
        self.target(parser, namespace, values, option)


def _require_later(parser: argparse.ArgumentParser, option: str, dest: str) -> None:
    """A required option that also has another spelling: argparse would refuse the other spelling, so
    :func:`check_args` checks it after parsing."""
    later = [*(parser.get_default("_required_later") or []), (parser, option, dest)]
    parser.set_defaults(_required_later=later)


def add_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Make option ``old`` a deprecated alias of the already added option ``new`` (hidden from ``--help``)."""
    target = parser._option_string_actions[new]
    if target.required:
        target.required = False
        _require_later(parser, new, target.dest)
    parser.add_argument(old, dest=target.dest, type=target.type, choices=target.choices, nargs=target.nargs,
                        metavar=target.metavar, action=_DeprecatedOption, new=new, target=target,
                        help=argparse.SUPPRESS)  # fmt: skip


class _PositionalRoot(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None):
        if values is not None:
            warn_deprecated("a positional data root", f"--root {values}")
            namespace.root = values


def add_root(parser: argparse.ArgumentParser, help: str, *, required: bool = True, positional_alias: bool = False):
    """``--root ROOT``; ``positional_alias`` keeps the old ``COMMAND ROOT`` form as a deprecated alias."""
    parser.add_argument("--root", required=required and not positional_alias, default=None, help=help)
    if positional_alias:
        parser.add_argument("legacy_root", nargs="?", default=None, action=_PositionalRoot, help=argparse.SUPPRESS)
        if required:
            _require_later(parser, "--root", "root")


def check_args(args: argparse.Namespace) -> None:
    """What argparse cannot check alone: a required option given under either of its spellings."""
    for parser, option, dest in getattr(args, "_required_later", None) or []:
        if getattr(args, dest, None) is None:
            parser.error(f"the following arguments are required: {option}")


def add_deprecated_command(
    sub: argparse._SubParsersAction,
    old: str,
    new: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """Command ``old`` (not listed in ``--help``) runs ``new``'s handler after a warning; ``new`` is the whole
    command, e.g. ``diffveri toy world``."""

    def run(args: argparse.Namespace) -> int:
        warn_deprecated(f"`{sub._prog_prefix} {old}`", f"`{new}`")
        return handler(args)

    p = sub.add_parser(old, description=f"Deprecated: use `{new}`.")
    add_arguments(p)
    p.set_defaults(handler=run)


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


class _RootOverride(argparse.Action):
    """``--root R`` (or ``--out O``) for a command whose data root (or run folder) is a config key: the override
    ``KEY=R``."""

    def __init__(self, *args: Any, key: str, **kwargs: Any) -> None:
        self.key = key
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None):
        namespace.overrides = [*(namespace.overrides or []), f"{self.key}={values}"]


def add_config_options(
    parser: argparse.ArgumentParser,
    help: str,
    *,
    required: bool = True,
    default: str | None = None,
    example: str = "",
    root_key: str | None = None,
    out_key: str | None = None,
) -> None:
    """``--config``, ``--set KEY=VALUE`` (repeatable) and ``--print-config``; with ``root_key``, also ``--root R``
    (the same as ``--set ROOT_KEY=R``) for commands whose data root is a config key, and with ``out_key``, ``--out O``
    (the same as ``--set OUT_KEY=O``) for commands whose main output is one."""
    parser.add_argument("--config", required=required, default=default, help=help)
    add_set_option(parser, f"override a config value{f', e.g. --set {example}' if example else ''} (repeatable)")
    if root_key:
        parser.add_argument("--root", action=_RootOverride, key=root_key, help=f"data root (= --set {root_key}=ROOT)")
    if out_key:
        parser.add_argument("--out", action=_RootOverride, key=out_key, help=f"run folder (= --set {out_key}=OUT)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config (defaults, file, --set) as YAML and exit"
    )


def print_config(args: argparse.Namespace, config: Any) -> bool:
    """With ``--print-config``: print ``config`` (a dict or a config dataclass) as YAML and return True."""
    if not getattr(args, "print_config", False):
        return False
    from .config import to_dict

    values = config if isinstance(config, dict) else to_dict(config)
    print(yaml.safe_dump(values, sort_keys=False), end="")
    return True


# Expected failures are one line and exit code 2: bad input (ValueError, KeyError), missing or unwritable files and a
# full disk (OSError), a diverged training (NonFiniteLossError is a FloatingPointError). Anything else is a bug: a
# traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, FloatingPointError)


def build_cli(prog: str, description: str, command_modules: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser of a command line whose commands each live in a module with ``register(subparsers)`` (heavy
    libraries are imported inside the handlers, so ``--help`` stays fast)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (and tracebacks)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules:
        importlib.import_module(name).register(sub)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, set up logging and run the command's handler; an expected failure is one line on stderr
    (``PROG COMMAND: error: ...``) and exit code 2 (``-v`` raises it instead)."""
    args = parser.parse_args(argv)
    check_args(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except EXPECTED_ERRORS as exc:
        if args.verbose:
            raise
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
