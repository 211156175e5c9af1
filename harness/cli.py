"""The ``hil`` command: list devices, run the conformance suites, rebuild the test PKI, serve virtual devices."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from devices import DeviceError
from devices.registry import check_uri, discover
from harness import fixtures, pools
from harness.iso.apdu import to_hex
from harness.iso.redact import SHOW_HOLDER_DATA_ENV
from harness.lab import INVENTORY_ENV, InventoryError, active_inventory, load_inventory, resolve

ROBOT_DIR = fixtures.suites_dir()
NON_SUITE_DIRS = {"resources"}
OPT_IN_SUITES = {"soak"}  # long runs for labs: only when named (``hil run soak``), never in the default set


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


def suite_names() -> list[str]:
    return sorted(p.name for p in ROBOT_DIR.iterdir() if p.is_dir() and p.name not in NON_SUITE_DIRS)


def resolve_suites(names: Sequence[str]) -> list[Path]:
    if not names:
        return [ROBOT_DIR / name for name in suite_names() if name not in OPT_IN_SUITES]
    paths = []
    for name in names:
        candidate = ROBOT_DIR / name
        path = candidate if candidate.exists() else Path(name)
        if not path.exists():
            raise UsageError(f"no suite '{name}'; known: {', '.join(suite_names())} (or a .robot path)")
        paths.append(path.resolve())
    return paths


# -- hil devices ------------------------------------------------------------------
def cmd_devices(args: argparse.Namespace) -> int:
    for scheme, found in discover().items():
        if isinstance(found, str):
            print(f"{scheme}: {found}")
            continue
        if not found:
            print(f"{scheme}: no devices found")
        for info in found:
            state = f" [{info.card_state}]" if info.card_state else ""
            atr = f" ATR {to_hex(info.atr)}" if info.atr else ""
            problem = f" — cannot open: {info.problem}" if info.problem else ""
            print(f"{info.uri:32} {info.description}{state}{atr}{problem}")
            if info.stable_uri:
                print(f"{'':32}   inventory: uri = \"{info.stable_uri}\"")
    if args.inventory:
        inventory = load_inventory(Path(args.inventory))
        print(f"inventory {inventory.path}:")
        for device in inventory.devices.values():
            expendable = "expendable" if device.expendable else "guarded"
            print(f"  {device.name:24} → {device.uri:32} {device.kind}, {expendable}  {device.description}")
    return 0


# -- hil run ------------------------------------------------------------------------
def _guards(devices: list[str]):
    """The readers to lock, by the URI the inventory gives them; the runner resolves no name itself."""
    from harness.runner import Guards

    return Guards(readers={device: resolve(device)[0] for device in devices})


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
        parallel: dict[str, tuple[int, str]] = {}
        for part in plan.runs:
            if part.device:
                names = check_devices(part.device, ask=False)
                readers += names
                if pools.is_pool(part.device):
                    parallel[part.device] = pool_parallelism(part.device, args.processes, len(names))
        if args.processes != 1 and not parallel:
            raise UsageError("--processes runs the parts of a plan that are on a device pool; no part of this plan "
                             "is, so --processes cannot go with it")
        return run_plan(plan, Path(args.outputdir), wait=args.wait, check_only=args.check,
                        robot_args=args.robot_args, console=args.console, parallel=parallel,
                        guards=_guards(readers))
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


def cmd_matrix(args: argparse.Namespace) -> int:
    from harness import matrix

    rows = []
    out = Path(args.outputdir)
    for number, output in enumerate(args.outputs, 1):
        path = Path(output)
        if not path.is_file():
            raise UsageError(f"no output file {path}")
        try:
            rows += matrix.outcomes(path, number=number, linked_from=out)
        except Exception as exc:  # Robot's DataError names the unreadable file
            raise UsageError(f"{path}: not a readable Robot output: {str(exc).splitlines()[0]}") from None
    out.mkdir(parents=True, exist_ok=True)
    for written in matrix.write(rows, out):
        print(f"Matrix: {written.resolve()}")
    return 0


def cmd_run_with_summary(args: argparse.Namespace) -> int:
    """``hil run``, then its figures: metrics.json and summary.html beside output.xml."""
    from harness.summary import write_summary

    code = cmd_run(args)
    outputdir = Path(args.outputdir)
    if (outputdir / "output.xml").exists():
        _, page = write_summary(outputdir)
        print(f"Summary: {page.resolve()}", file=sys.stderr)  # stdout ends with the report path (CI contract)
    return code


def cmd_trend(args: argparse.Namespace) -> int:
    from harness.iso.redact import redact_text
    from harness.summary import render_trend, trend_series

    series = trend_series([Path(d) for d in args.run_dirs])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(redact_text(render_trend(series)), encoding="utf-8")
    for device, points in series.items():
        shown = ", ".join(f"{run}: {rate}% / {median} ms" for run, rate, median in points)
        print(f"{device}: {shown}")
    print(f"Trend: {out.resolve()}")
    return 0


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


# -- hil record / compare (trace files as data) ---------------------------------------
def cmd_record(args: argparse.Namespace) -> int:
    from harness.recording import RecordOptions, record

    if args.show_holder_data and args.anonymise:
        raise UsageError("give --anonymise or --show-holder-data, not both")
    if args.interactive:
        given = [flag for flag, value in (("suites", args.suites), ("--include", args.include),
                                          ("--exclude", args.exclude)) if value]
        if given:
            raise UsageError(f"--interactive records what is typed, not suites; {', '.join(given)} cannot go with it")
        if not args.device:
            raise UsageError("--interactive needs --device: the reader to talk to")
    if args.device:
        check_uri(resolve(args.device)[0])
    os.environ.pop(SHOW_HOLDER_DATA_ENV, None)  # lifted only when asked for on this command line
    if args.show_holder_data:
        os.environ[SHOW_HOLDER_DATA_ENV] = "1"
    if args.interactive:
        from harness.interactive import record_interactive

        return record_interactive(args.device, Path(args.out), args.anonymise)
    options = RecordOptions(resolve_suites(args.suites), Path(args.out), Path(args.outputdir), args.device,
                            args.anonymise, args.include or [], args.exclude or [])
    return record(options)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, write_json

    recording = Path(args.recording)
    if not recording.is_file():
        raise UsageError(f"no recording {recording}")
    check_uri(resolve(args.device)[0])
    result = compare(recording, args.device)
    for difference in result.differences[: args.limit]:
        print(difference.line())
    if len(result.differences) > args.limit:
        print(f"… and {len(result.differences) - args.limit} more (--json keeps them all)")
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        write_json(result, Path(args.json))
    print(result.summary())
    return 1 if result.differences else 0


# -- hil pki generate ----------------------------------------------------------------
def cmd_pki_generate(args: argparse.Namespace) -> int:
    from harness.pki.generate import generate

    written = generate(Path(args.out))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


# -- hil docs --------------------------------------------------------------------------
def cmd_docs(args: argparse.Namespace) -> int:
    from robot.libdoc import libdoc

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "JPKILibrary.html"
    if libdoc("harness.keywords.JPKILibrary", str(target), quiet=True) != 0:
        raise UsageError("libdoc could not document harness.keywords.JPKILibrary")
    print(f"Keyword documentation: {target.resolve()}")
    # the suites' shared keywords (Begin Requirement, Open Card Under Test…) are documented too
    for resource in sorted(ROBOT_DIR.rglob("*.resource")):
        page = out / f"{resource.stem}.resource.html"
        if libdoc(str(resource), str(page), quiet=True) != 0:
            raise UsageError(f"libdoc could not document {resource}")
        print(f"Resource documentation: {page.resolve()}")
    return 0


# -- hil virtual serve ---------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line (``hil virtual serve: error: …``) and exit 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def port_number(lowest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not lowest <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port ({lowest}-65535)")
        return int(text)
    return parse


def cmd_virtual_serve(args: argparse.Namespace) -> int:
    from devices.virtual import serve  # the CLI's one door into the virtual devices (DESIGN.md rule 6)

    try:
        serve.serve(args.profile, pcsc=args.pcsc, port=args.port, nfc_udp=args.nfc_udp, serial=args.serial,
                    rfc2217=args.rfc2217, tries=args.tries, state_file=args.state_file)
    except serve.ServeError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_remote_serve(args: argparse.Namespace) -> int:
    """A reader host: this machine's device, served to a controller that names it ``remote:http://HOST:PORT``."""
    from devices.remote import remote_token
    from harness.remote.server import serve

    remote_token("hil remote serve")  # before anything is opened: no token, no server
    if args.inventory:
        os.environ[INVENTORY_ENV] = str(Path(args.inventory).resolve())
        load_inventory(Path(args.inventory))
    return serve(args.device, args.host, args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    devices = sub.add_parser("devices", help="list the devices every backend can see")
    devices.add_argument("--inventory", help="also list the devices of this lab inventory (TOML)")
    devices.set_defaults(func=cmd_devices)

    run = sub.add_parser("run", help="run conformance suites and write Robot's log, report and xunit")
    run.add_argument("suites", nargs="*", help=f"suite folders or .robot files (default: all of "
                     f"{[n for n in suite_names() if n not in OPT_IN_SUITES]}; {', '.join(sorted(OPT_IN_SUITES))} "
                     "only when named)")
    run.add_argument("--device", help="device URI or inventory name for every suite (default: each suite's own)")
    run.add_argument("--outputdir", default="results", help="where output.xml, log, report and xunit go")
    run.add_argument("--inventory", help=f"lab inventory (TOML); also read from ${INVENTORY_ENV}")
    run.add_argument("--include", action="append", help="only tests with this tag (repeatable)")
    run.add_argument("--exclude", action="append", help="skip tests with this tag (repeatable)")
    run.add_argument("--processes", type=int, default=1, help="run suites in parallel with pabot")
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

    matrix = sub.add_parser("matrix", help="rebuild the requirement matrix (a column per plan part) from Robot outputs")
    matrix.add_argument("outputs", nargs="+", help="output.xml files (merged, rerun, any)")
    matrix.add_argument("--outputdir", default=".", help="where matrix.csv and matrix.html go")
    matrix.set_defaults(func=cmd_matrix)

    rec = sub.add_parser("record", help="run suites against a device and keep its trace as a recording")
    rec.add_argument("suites", nargs="*", help="suite folders or .robot files (default: all)")
    rec.add_argument("--device", help="device URI or inventory name (default: each suite's own)")
    rec.add_argument("--out", required=True, help="the recording to write, e.g. fixtures/recordings/x.jsonl")
    rec.add_argument("--outputdir", default="results/record", help="where Robot's log and report of the run go")
    rec.add_argument("--anonymise", action="store_true",
                     help="replace the holder's data by an anonymous holder's (lengths and TLV structure kept)")
    rec.add_argument("--show-holder-data", action="store_true",
                     help="keep the holder data of a card whose holder record says synthetic = true")
    rec.add_argument("--include", action="append", help="only tests with this tag (repeatable)")
    rec.add_argument("--exclude", action="append", help="skip tests with this tag (repeatable)")
    rec.add_argument("--interactive", action="store_true",
                     help="a prompt of keywords (Select Applet    jpki) and hex APDUs against --device, recorded; "
                          "PINs only through the guarded keywords (Verify PIN    auth)")
    rec.set_defaults(func=cmd_record)

    cmp_ = sub.add_parser("compare", help="send a recording's commands to a device; report where it answers otherwise")
    cmp_.add_argument("recording", help="a recording or trace file (JSON lines)")
    cmp_.add_argument("--device", required=True, help="device URI or inventory name to compare")
    cmp_.add_argument("--json", help="also write every difference to this JSON file")
    cmp_.add_argument("--limit", type=int, default=20, help="differences printed (default 20)")
    cmp_.set_defaults(func=cmd_compare)

    trend = sub.add_parser("trend", help="pass rate and APDU latency per device across runs (trend.html)")
    trend.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output folders of hil run, oldest first")
    trend.add_argument("--out", default="results/trend.html", help="the page to write")
    trend.set_defaults(func=cmd_trend)

    docs = sub.add_parser("docs", help="write the keyword documentation (libdoc) of the Robot library")
    docs.add_argument("--out", default="results", help="folder for JPKILibrary.html")
    docs.set_defaults(func=cmd_docs)

    pki = sub.add_parser("pki", help="the test JPKI hierarchy")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    generate = pki_sub.add_parser("generate", help="rebuild fixtures/pki (CAs, card and phone certificates, CRLs)")
    generate.add_argument("--out", default=str(fixtures.lab_fixture_dir("pki")))
    generate.set_defaults(func=cmd_pki_generate)

    virtual = sub.add_parser("virtual", help="virtual devices for manual lab use")
    virtual_sub = virtual.add_subparsers(dest="virtual_command", required=True, parser_class=OneLineParser)
    serve = virtual_sub.add_parser("serve", help="serve a virtual card or phone behind a real stack")
    serve.add_argument("profile", help="card profile: card, phone, revoked-card or a .toml path")
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--pcsc", action="store_true", help="as a card in vpcd's reader (pcscd must run)")
    serve.add_argument("--port", type=port_number(1), help="vpcd port (default 35963)")
    mode.add_argument("--nfc-udp", type=port_number(1), metavar="PORT", help="as a Type B card on nfcpy's UDP link")
    mode.add_argument("--serial", metavar="PROTOCOL",
                      help="as a serial reader module on a pty (kiosk, stb, line or a protocol .toml)")
    serve.add_argument("--rfc2217", type=port_number(0), metavar="PORT",
                       help="with --serial: also as RFC 2217 on 127.0.0.1:PORT (0: any free port)")
    serve.add_argument("--tries", action="append", metavar="PIN=N",
                       help="start with PIN's retry counter at N (auth=1; repeatable or comma-separated)")
    serve.add_argument("--state-file", metavar="PATH",
                       help="rewrite PATH (JSON) after every APDU with the card's counters and wrong-VERIFY counts")
    serve.set_defaults(func=cmd_virtual_serve)

    remote = sub.add_parser("remote", help="reader hosts: serve this machine's reader to a controller")
    remote_sub = remote.add_subparsers(dest="remote_command", required=True, parser_class=OneLineParser)
    host = remote_sub.add_parser("serve", help="serve one device over Robot's remote protocol (needs HIL_REMOTE_TOKEN)")
    host.add_argument("--device", required=True, help="device URI or inventory name on this host")
    host.add_argument("--inventory", help=f"this host's lab inventory (TOML); also read from ${INVENTORY_ENV}")
    host.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    host.add_argument("--port", required=True, type=port_number(1), help="port to listen on")
    host.set_defaults(func=cmd_remote_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from harness.locks import LockBusy
    from harness.runner import RunError

    try:
        fixtures.check_environment()  # before the parser: its help lists the suites
    except fixtures.FixturesError as exc:
        print(f"hil: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    robot_args: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:  # Robot's own options, passed through untouched
        cut = argv.index("--")
        argv, robot_args = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if args.command == "run":
        args.robot_args = robot_args
    try:
        return int(args.func(args))
    except (UsageError, DeviceError, InventoryError, fixtures.FixturesError, ValueError, OSError, RunError,
            LockBusy) as exc:
        print(f"hil: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hil: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
