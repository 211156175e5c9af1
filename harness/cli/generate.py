"""``hil docs`` and ``hil pki generate``: files the project writes from itself (keyword pages, the test PKI)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import fixtures

from .common import ROBOT_DIR, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hil docs`` and ``hil pki generate``."""
    docs = sub.add_parser("docs", help="write the keyword documentation (libdoc) of the Robot library")
    docs.add_argument("--out", default="results", help="folder for JPKILibrary.html")
    docs.set_defaults(func=cmd_docs)


    pki = sub.add_parser("pki", help="the test JPKI hierarchy")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    generate = pki_sub.add_parser("generate", help="rebuild fixtures/pki (CAs, card and phone certificates, CRLs)")
    generate.add_argument("--out", default=str(fixtures.lab_fixture_dir("pki")))
    generate.set_defaults(func=cmd_pki_generate)


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


def cmd_pki_generate(args: argparse.Namespace) -> int:
    from harness.pki.generate import generate

    written = generate(Path(args.out))
    print(f"wrote {len(written)} files to {args.out}")
    return 0
