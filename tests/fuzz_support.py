"""Seeded generators of hostile input for the loaders and the URI grammar, and the tally of what they provoke.

Shared by ``tests/test_fuzz_inputs.py`` (a few thousand cases, in CI) and ``benchmarks/bench_fuzz_inputs.py``
(the large counts). A case is *refused* when the loader raises its own typed error as one line naming the
file (or the URI); *untyped* when it raises the typed error but the message is not one such line; *uncaught*
when anything else escapes. Every generator is deterministic for a seed.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INVENTORY_SEEDS = [REPO / "fixtures" / "lab" / "example.toml"]
PROTOCOL_SEEDS = sorted((REPO / "fixtures" / "protocols").glob("*.toml"))

WORDS = ["uri", "card", "kind", "expendable", "expandable", "holder", "pin_env", "pin_reserve", "auth", "sign",
         "text", "description", "contactless", "extended_apdu", "pin_pad", "devices", "protocol", "serial",
         "timing", "framing", "layout", "commands", "status", "events", "reader", "retries", "kind", "stx",
         "baudrate", "max_payload", "length_bytes", "checksum", "ack", "nak", "code", "seq", "data", "x", "",
         "日本", "a.b", "a b", "\u0000"]
STRINGS = ["", "false", "true", "flase", "card", "phone", "nobody", "virtual:card", "virtual:card?extened=0",
           "virtual:card?via=pcsc&t0=maybe", "pcsc:", "nfc:udp:127.0.0.1:99999", "serial:/dev/null?protocol=kiosk",
           "stx_etx", "line", "length", "bcc", "big", "N", "\r\n", "A" * 300, "HIL_AUTH_PIN", "MY PIN", "0x02",
           "\u00e9", "\\", "\"", "'"]


@dataclass
class Tally:
    """Outcomes of one loader or boundary; ``samples`` keeps the first few problems for the report."""

    name: str
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    untyped: int = 0
    uncaught: int = 0
    frames: int = 0  # hostile datagrams sent, for the device boundaries
    kinds: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def problem(self, what: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(what)

    def line(self) -> str:
        frames = f" ({self.frames} hostile frames)" if self.frames else ""
        return (f"{self.name}: {self.cases} cases{frames}, {self.accepted} accepted, "
                f"{self.refused} refused with a typed one-line error, {self.untyped} untyped, {self.uncaught} uncaught")


# -- values and TOML ---------------------------------------------------------------------------------------
def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(STRINGS)
    if roll < 0.45:
        return rng.choice([0, 1, -1, 2, 3, 255, 256, 65535, 65536, 2**31, 2**63 - 1, -(2**63)])
    if roll < 0.55:
        return rng.choice([0.0, 0.5, -1.5, 1e300, float("inf"), float("nan")])
    if roll < 0.7:
        return rng.choice([True, False])
    if roll < 0.75:
        return datetime.datetime(2026, 1, 2, 3, 4, 5)
    if roll < 0.88 and depth < 4:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 4:
        return {rng.choice(WORDS) or "k": random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(STRINGS)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(text, text)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_key(str(k))} = {_inline(v)}" for k, v in value.items()) + " }"


def dump_toml(data: dict, prefix: tuple[str, ...] = ()) -> str:
    """A minimal TOML writer: scalars and arrays inline, tables as ``[a.b]`` headers."""
    scalars = [f"{_key(k)} = {_inline(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = []
    if prefix:
        out.append("[" + ".".join(_key(p) for p in prefix) + "]")
    out += scalars
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(dump_toml(value, (*prefix, key)))
    return "\n".join(out) + "\n"


def _nodes(data: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*path, key)
            yield from _nodes(value, (*path, key))


def mutate_tree(rng: random.Random, data: dict) -> dict:
    nodes = list(_nodes(data)) or [("x",)]
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(nodes)
        parent: Any = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        op = rng.random()
        if op < 0.45:
            parent[path[-1]] = random_value(rng)
        elif op < 0.6:
            parent.pop(path[-1], None)
        elif op < 0.8:
            parent[rng.choice(WORDS) or "extra"] = random_value(rng)
        elif path[-1] in parent:
            typo = path[-1][:-1] + rng.choice("aeiouxz") if path[-1] else "y"
            parent[typo] = parent.pop(path[-1])
    return data


def mutate_text(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    roll = rng.random()
    if roll < 0.15:  # deep nesting: tomllib recurses once per level
        depth = rng.choice([50, 500, 1200, 3000])
        line = f"deep = {'[' * depth}1{']' * depth}\n".encode()
        at = rng.randrange(len(data) + 1)
        at = data.rfind(b"\n", 0, at) + 1
        data[at:at] = line
        return bytes(data)
    if roll < 0.2:
        return bytes(data[: rng.randrange(len(data) + 1)])
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        at = rng.randrange(len(data) + 1)
        if op < 0.3 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op < 0.5:
            data[at:at] = rng.choice([b"[", b"]", b"=", b'"', b"\n", b"[[", b"{", b",", b".", b"\xff", b"\x00",
                                      b"\n[devices.x]\n", b"\nkind = 1\n", b" = = "])
        elif op < 0.7 and data:
            del data[at : at + rng.randint(1, 12)]
        else:
            lines = data.split(b"\n")
            index = rng.randrange(len(lines))
            lines.insert(index, lines[rng.randrange(len(lines))])
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def file_cases(seeds: list[Path], rng: random.Random, count: int) -> Iterator[bytes]:
    """``count`` hostile files from the seed files: structural mutations (types, keys) and textual ones."""
    texts = [path.read_text("utf-8") for path in seeds]
    for _ in range(count):
        text = rng.choice(texts)
        if rng.random() < 0.55:
            yield dump_toml(mutate_tree(rng, tomllib.loads(text))).encode("utf-8")
        else:
            yield mutate_text(rng, text)


def run_loader(name: str, load: Callable[[Path], object], error: type[Exception], cases: Iterator[bytes],
               workdir: Path) -> Tally:
    tally = Tally(name)
    path = workdir / f"fuzz-{name}.toml"
    for raw in cases:
        tally.cases += 1
        path.write_bytes(raw)
        try:
            load(path)
        except error as exc:
            message = str(exc)
            if "\n" in message or str(path) not in message:
                tally.untyped += 1
                tally.problem(f"{type(exc).__name__}: {message[:160]!r}")
            else:
                tally.refused += 1
        except Exception as exc:  # counting what escapes is the point
            tally.uncaught += 1
            tally.kinds[type(exc).__name__] += 1
            tally.problem(f"{type(exc).__name__}: {str(exc)[:160]}")
        else:
            tally.accepted += 1
    return tally


# -- device URIs ---------------------------------------------------------------------------------------------
SCHEMES = ["virtual", "pcsc", "nfc", "serial", "rfc2217", "socket", "virtual", "virtual", "bogus", "VIRTUAL", ""]
BODIES = {"virtual": ["card", "phone", "revoked-card", "tablet", "", "../card"],
          "pcsc": ["", "ACS", "Virtual%20PCD", "%ZZ"], "nfc": ["usb", "usb:054c:06c3", "udp:127.0.0.1:54321",
                                                               "udp:x:1", "tty:USB0:pn532", "bluetooth"],
          "serial": ["/dev/ttyUSB0", "", "///dev/x"], "rfc2217": ["//127.0.0.1:4000", "//h", "//h:x", "//:1"],
          "socket": ["//127.0.0.1:4001", "//[::1]:1"]}
OPTION_NAMES = ["via", "extended", "extened", "max_response", "timeout", "expendable", "sign_delay_ms", "t0",
                "port", "reader", "get_response", "resend_6c", "reset", "share", "targets", "protocol",
                "transport", "baudrate", "exclusive", "retries", "apdu_timeout", "ack_timeout", "parity",
                "stopbits", "bytesize", "ign_set_control", "logging", "terminal", "bogus", "", "日本"]
OPTION_VALUES = ["", "0", "1", "on", "off", "yes", "maybe", "true", "FALSE", "-1", "1e9", "nan", "inf", "3000",
                 "65536", "99999", "pcsc", "nfc", "kiosk", "stb", "serial", "pc", "rfc2217", "socket", "carrier",
                 "106A,106B", "212F", "cold", "warm", "exclusive", "line", "E", "1.5", "%ff", "a&b", "x=y"]


def uri_cases(rng: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        scheme = rng.choice(SCHEMES)
        body = rng.choice(BODIES.get(scheme.lower(), ["x"]))
        options = "&".join(
            rng.choice(OPTION_NAMES) + ("" if rng.random() < 0.1 else "=" + rng.choice(OPTION_VALUES))
            for _ in range(rng.randint(0, 4)))
        uri = f"{scheme}:{body}" + (f"?{options}" if options or rng.random() < 0.2 else "")
        if rng.random() < 0.1:
            raw = bytearray(uri.encode())
            raw[rng.randrange(len(raw))] = rng.randrange(32, 127)
            uri = raw.decode("ascii", "replace")
        yield uri


def run_uris(check: Callable[[str], object], error: type[Exception], cases: Iterator[str]) -> Tally:
    tally = Tally("device URI")
    for uri in cases:
        tally.cases += 1
        try:
            check(uri)
        except error as exc:
            message = str(exc)
            if "\n" in message or not message:
                tally.untyped += 1
                tally.problem(f"{uri!r}: {message[:160]!r}")
            else:
                tally.refused += 1
        except Exception as exc:
            tally.uncaught += 1
            tally.kinds[type(exc).__name__] += 1
            tally.problem(f"{uri!r}: {type(exc).__name__}: {str(exc)[:160]}")
        else:
            tally.accepted += 1
    return tally
