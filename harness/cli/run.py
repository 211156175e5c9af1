"""``hil run`` (conformance suites or a run plan on devices, pools or inventory names) and ``hil recover``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devices.registry import check_uri
from harness import pools
from harness.iso.redact import SHOW_HOLDER_DATA_ENV
from harness.lab import INVENTORY_ENV, active_inventory, load_inventory, resolve

from .common import OPT_IN_SUITES, UsageError, resolve_suites, suite_names


def _guards(devices: list[str], pooled: dict[str, list[str]] | None = None):
    """The readers to lock, by the URI the inventory gives them; the runner resolves no name itself."""
    from harness.runner import Guards

    return Guards(readers={device: resolve(device)[0] for device in devices}, pools=pooled or {})


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner import RunOptions, load_plan, run_plan, run_suites

    # the holder mask lifts only when asked for on this command line (and then for synthetic holders only)
    os.environ.pop(SHOW_HOLDER_DATA_ENV, None)
    if args.show_holder_data:
        os.environ[SHOW_HOLDER_DATA_ENV] = "1"
    if args.processes < 1:
        raise UsageError("--processes must be 1 or more")
    if args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    if args.inventory:
        load_inventory(Path(args.inventory))  # fail early, with the file and line
        os.environ[INVENTORY_ENV] = str(Path(args.inventory).resolve())
    elif os.environ.get(INVENTORY_ENV):
        active_inventory()  # an unreadable $HIL_INVENTORY stops here (one line naming it), not in every test
    if args.plan:
        given = [flag for flag, value in (("suites", args.suites), ("--device", args.device),
                                          ("--include", args.include), ("--exclude", args.exclude)) if value]
        if given:
            raise UsageError(f"--plan names its own suites, devices and tags; {', '.join(given)} cannot go with it")
        plan = load_plan(Path(args.plan))
        readers: list[str] = []
        pooled: dict[str, list[str]] = {}  # pool:NAME → members, for the parts' leases (harness.parallel_parts)
        for part in plan.runs:
            if part.device:
                names = check_devices(part.device, ask=False)
                readers += names
                if pools.is_pool(part.device):
                    pooled[part.device] = names
        return run_plan(plan, Path(args.outputdir), wait=args.wait, check_only=args.check,
                        robot_args=args.robot_args, console=args.console, processes=args.processes,
                        guards=_guards(readers, pooled))
    processes, value_sets, readers = args.processes, "", [args.device] if args.device else []
    if pools.is_pool(args.device):
        readers = check_devices(args.device, ask=args.ask_pins)
        processes, value_sets = pool_parallelism(args.device, args.processes, len(readers))
    elif args.device:
        uri, lab_device = resolve(args.device)
        check_uri(uri)
        from harness.locks import reader_key

        if args.processes > 1 and reader_key(uri) is not None:
            raise UsageError(f"--processes {args.processes} would drive the one reader behind {args.device} from "
                             f"{args.processes} processes at once; use --processes 1 with it, or a pool")
        if args.ask_pins:
            ask_pins(args.device, lab_device)
        if lab_device is not None:
            preflight_pins(args.device, lab_device)
    options = RunOptions(
        suites=resolve_suites(args.suites),
        outputdir=Path(args.outputdir),
        device=args.device,
        include=args.include or [],
        exclude=args.exclude or [],
        processes=processes,
        value_sets=value_sets,
        robot_args=args.robot_args,
        console=args.console,
        wait=args.wait,
        check_only=args.check,
    )
    if options.include or options.exclude:
        from harness.preflight import needs_of

        if needs_of(options.suites, options.include, options.exclude).tests == 0:
            raise UsageError(f"no test of {', '.join(args.suites) or 'robot/'} matches the --include/--exclude tags")
    return run_suites(options, _guards(readers))


def check_devices(device: str, *, ask: bool) -> list[str]:
    """The inventory names behind ``device`` (every member of a pool), each URI and its PINs checked."""
    names = [member.name for member in pools.members(device)] if pools.is_pool(device) else [device]
    for name in names:
        uri, lab_device = resolve(name)
        check_uri(uri)
        if ask:
            ask_pins(name, lab_device)
        if lab_device is not None:  # its PINs set and possible before anything runs
            preflight_pins(name, lab_device)
    return names


def pool_parallelism(device: str, processes: int, size: int) -> tuple[int, str]:
    """pabot workers for a pool (never more than it has readers) and PabotLib's value sets for them."""
    workers = min(processes, size)
    if workers < processes:
        print(f"hil: {device} has {size} device(s): {workers} worker(s), not {processes}", file=sys.stderr)
    return workers, pools.value_sets(device) if workers > 1 else ""


def cmd_recover(args: argparse.Namespace) -> int:
    from harness.runner import recover

    return recover(Path(args.outputdir))


def cmd_run_with_summary(args: argparse.Namespace) -> int:
    """``hil run``, then its figures: metrics.json and summary.html beside output.xml."""
    from harness.summary import write_summary

    code = cmd_run(args)
    outputdir = Path(args.outputdir)
    if (outputdir / "output.xml").exists():
        _, page = write_summary(outputdir)
        print(f"Summary: {page.resolve()}", file=sys.stderr)  # stdout ends with the report path (CI contract)
    return code


def preflight_pins(device: str, lab_device) -> None:
    """Before anything runs: a PIN the inventory's variables hold that cannot be right (format) stops the run
    with one line; the value is never shown or sent. (A variable the selected tests need but that is unset
    stops in :mod:`harness.preflight`, with its name.)"""
    from harness.pin_guard import PinFormatError, check_pin_format

    for kind, variable in lab_device.pin_env.items():
        value = os.environ.get(variable)
        if not value:
            continue
        try:
            check_pin_format(kind, value, configured=True, device=device)
        except PinFormatError as exc:
            raise UsageError(str(exc)) from None


def ask_pins(device: str, lab_device) -> None:
    from harness.credentials import PIN_KINDS, prompt_for_pins

    if not sys.stdin.isatty():
        raise UsageError("--ask-pins needs a terminal; otherwise set the PIN variables in the environment")
    variables = dict(lab_device.pin_env) if lab_device and lab_device.pin_env else {
        kind: f"HIL_{kind.upper()}_PIN" for kind in PIN_KINDS}
    prompt_for_pins(variables, device)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hil run`` (every option of ``run`` is defined here, ``cmd_run`` reads them) and ``hil recover``."""
    run = sub.add_parser("run", help="run conformance suites and write Robot's log, report and xunit")
    run.add_argument("suites", nargs="*", help=f"suite folders or .robot files (default: all of "
                     f"{[n for n in suite_names() if n not in OPT_IN_SUITES]}; {', '.join(sorted(OPT_IN_SUITES))} "
                     "only when named)")
    run.add_argument("--device", help="device URI or inventory name for every suite (default: each suite's own)")
    run.add_argument("--outputdir", default="results", help="where output.xml, log, report and xunit go")
    run.add_argument("--inventory", help=f"lab inventory (TOML); also read from ${INVENTORY_ENV}")
    run.add_argument("--include", action="append", help="only tests with this tag (repeatable)")
    run.add_argument("--exclude", action="append", help="skip tests with this tag (repeatable)")
    run.add_argument("--processes", type=int, default=1,
                     help="with --plan: up to N parts at once; else suites in parallel with pabot")
    run.add_argument("--ask-pins", action="store_true",
                     help="ask at the terminal (no echo) for the device's PINs not set in the environment")
    run.add_argument("--plan", help="a run plan (TOML): several suites × devices, one merged report and a matrix")
    run.add_argument("--show-holder-data", action="store_true",
                     help="show the holder data of cards whose holder record says synthetic = true (PINs stay masked)")
    run.add_argument("--check", action="store_true",
                     help="only the pre-flight: open every device, identify its card, check PINs and holder")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait up to SECONDS for a reader another run holds (default: fail at once)")
    run.add_argument("--console", choices=("verbose", "dotted", "quiet"), help="Robot's console output")
    run.set_defaults(func=cmd_run_with_summary, robot_args=[])
    run.epilog = "Robot's own options go after --, e.g. hil run card -- --dryrun --loglevel DEBUG"

    recover = sub.add_parser("recover", help="rebuild the report of a killed run from its results journal")
    recover.add_argument("outputdir", help="the killed run's output folder")
    recover.set_defaults(func=cmd_recover)
