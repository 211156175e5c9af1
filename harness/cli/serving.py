"""``hil virtual serve`` and ``hil remote serve``: processes that stay up and serve a device until stopped."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.lab import INVENTORY_ENV, load_inventory

from .common import OneLineParser, UsageError, port_number


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hil virtual serve`` and ``hil remote serve``."""
    virtual = sub.add_parser("virtual", help="virtual devices for manual lab use")
    virtual_sub = virtual.add_subparsers(dest="virtual_command", required=True, parser_class=OneLineParser)
    serve = virtual_sub.add_parser("serve", help="serve a virtual card or phone behind a real stack")
    serve.add_argument("profile", help="card profile: card, phone, revoked-card or a .toml path")
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--pcsc", action="store_true", help="as a card in vpcd's reader (pcscd must run)")
    serve.add_argument("--port", type=port_number(1), help="vpcd port (default 35963)")
    mode.add_argument("--nfc-udp", type=port_number(0), metavar="PORT",
                      help="as a Type B card on nfcpy's UDP link on 127.0.0.1:PORT (0: any free port)")
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
