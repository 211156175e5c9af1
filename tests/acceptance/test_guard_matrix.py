"""Issue #9's matrix: a guarded card never loses a PIN, on any transport, whatever the configuration says.

The card is reached as a lab device (an inventory with ``expendable = false`` and PINs from the environment
variables it names). On every transport but the in-process one the card is served by another process
(``hil virtual serve … --tries … --state-file …``), and its counters and its own count of wrong VERIFYs
are read from that process's state file: the card side, never the harness. In-process, the card object
itself is watched from a Robot listener. Each cell runs real suites; the figures go to
``results/guard-matrix.md``.

Suites per cell: in-process and PC/SC run the whole card suite, the terminal suites and the phone suite;
the kiosk and set-top modules on a pty, RFC 2217 and nfcpy's UDP link run the PIN-touching requirements
(``pins``, ``text-ap``, ``signing``, ``sends-pin`` for the others that send one, the raw VERIFY
``HIL-GRD-001``) and the terminal suites, and nfcpy the phone suite too. That selection is checked: in the
in-process correct-PINs cell, every test that sent a VERIFY or CHANGE REFERENCE DATA with data must be in it.
The phone is not run in the cells that configure only the text PIN: it has none, so its run there would be
the correct-PINs run again, and its row says so. "Impossible format" cells on served transports stop in
``hil run``'s pre-flight; in-process they run the suites, so the keywords' own format check is exercised.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult, TestSuiteBuilder
from robot.libraries.BuiltIn import BuiltIn

import robot
from devices.virtual.card_report import CardCounters
from devices.virtual.rig import rig_of

pytest_plugins = ["pcsc_support"]  # the session's pcscd (vpcd's reader)

REPO = Path(__file__).resolve().parents[2]
MATRIX_FILE = REPO / "results" / "guard-matrix.md"
RESERVE = {"auth": 2, "sign": 3, "text": 2, "number_a": 2, "number_b": 2}
GOOD = {"card": {"auth": "2580", "sign": "TESTSIGN1", "text": "2580"},
        "phone": {"auth": "4321", "sign": "PHONESIGN2"}}
WRONG = {"auth": "1111", "sign": "WRONGSIGN7", "text": "1111"}
IMPOSSIBLE = {"auth": "25801", "sign": "testsign1", "text": "25a0"}
AT_ONE = {"auth": 1, "sign": 1, "text": 1}
AT_RESERVE = {"auth": 2, "sign": 3, "text": 2}
GUARD_WORDS = ("is wrong;", "would leave", "below the reserve", "cannot be right", "VERIFY auth answered 63C",
               "VERIFY sign answered 63C", "VERIFY text answered 63C", "63C2", "63C4", "wrong_pin", "PIN guard")
REFUSALS = ("is wrong;", "would leave", "below the reserve", "cannot be right")
FOCUSED = ["--include", "pins", "--include", "text-ap", "--include", "signing", "--include", "sends-pin",
           "--include", "HIL-GRD-001", "--include", "terminal"]  # every test that sends a PIN: checked in-process


@dataclass(frozen=True)
class Config:
    name: str
    pins: dict[str, str] = field(default_factory=dict)  # PIN kind → configured value replacing the good one
    tries: dict[str, int] = field(default_factory=dict)  # counters pre-set on the card
    expect: str = ""  # the guard message the failing requirements must carry


CONFIGS = {c.name: c for c in [
    Config("correct PINs"),
    *(Config(f"{k} wrong", {k: WRONG[k]}, expect=f"the configured {label} is wrong;")
      for k, label in (("auth", "auth PIN"), ("sign", "sign password"), ("text", "text PIN"))),
    Config("all wrong", dict(WRONG), expect="is wrong;"),
    *(Config(f"{k} impossible", {k: IMPOSSIBLE[k]}, expect="cannot be right") for k in IMPOSSIBLE),
    Config("all impossible", dict(IMPOSSIBLE), expect="cannot be right"),
    Config("at 1 try", tries=AT_ONE, expect="below the reserve"),
    Config("at the reserve", tries=AT_RESERVE, expect="would leave"),
]}
FULL = ["correct PINs", "auth wrong", "sign wrong", "text wrong", "auth impossible", "sign impossible",
        "text impossible", "at 1 try", "at the reserve"]
SHORT = ["correct PINs", "all wrong", "all impossible", "at 1 try", "at the reserve"]
TRANSPORTS = {"in-process": FULL, "pcsc": FULL, "kiosk": SHORT, "stb": SHORT, "rfc2217": SHORT, "nfc": SHORT}
PHONE_ON = {"in-process", "pcsc", "nfc"}
CELLS = [(t, c) for t, configs in TRANSPORTS.items() for c in configs]


def kinds_for(transport: str, config: Config) -> list[str]:
    """The card, and the phone where it is on the transport and the configuration is the baseline or changes
    one of the phone's PINs (the inputs of its run would otherwise be the correct-PINs cell's, byte for byte)."""
    touched = config.pins.keys() | config.tries.keys()
    phone = transport in PHONE_ON and (not touched or bool(touched & GOOD["phone"].keys()))
    return ["card", "phone"] if phone else ["card"]
ROWS: list[str] = []


# -- the card side ---------------------------------------------------------------------------------------
class ServedCard:
    """``hil virtual serve`` in its own process; its state file is the card's own account."""

    def __init__(self, tmp: Path, profile: str, transport: str, tries: dict[str, int], port: int) -> None:
        self.state_file = tmp / f"{profile}-state.json"
        how = {"pcsc": ["--pcsc", "--port", str(port)], "kiosk": ["--serial", "kiosk"], "stb": ["--serial", "stb"],
               "rfc2217": ["--serial", "kiosk", "--rfc2217", "0"], "nfc": ["--nfc-udp", str(port)]}[transport]
        tries_args = [f"--tries={k}={v}" for k, v in tries.items() if profile == "card" or k != "text"]
        self.proc = subprocess.Popen(
            [*hil_command(), "virtual", "serve", profile, *how, *tries_args,
             "--state-file", str(self.state_file)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = self._lines(2 if transport == "rfc2217" else 1, timeout=30)
        self.uri = {"pcsc": lambda: re.search(r"\(device (pcsc:[^)]+)\)", lines[0]).group(1),
                    "nfc": lambda: lines[0].rsplit("open ", 1)[1].strip()}.get(transport, lambda: lines[-1].strip())()

    def _lines(self, count: int, timeout: float) -> list[str]:
        """The first ``count`` lines the server prints, waited for with a deadline (a reader thread feeds a
        queue: a select() on a buffered pipe could miss a line already read into the buffer)."""
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True,
                         name="served-card-stdout").start()
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                got.append(lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                self.proc.kill()
                _, err = self.proc.communicate(timeout=10)
                raise AssertionError(f"the card server announced {len(got)} of {count} lines within {timeout} s: "
                                     f"{err[-2000:]}") from None
        return got

    def state(self) -> dict:
        return json.loads(self.state_file.read_text(encoding="utf-8"))["pins"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()


class InProcessProbe:
    """Robot listener for in-process cells: every virtual card the library opens is pre-set and watched, and the
    tests that made it a VERIFY or CHANGE REFERENCE DATA with data (a PIN on the wire) are noted by file and name."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, tries: dict[str, int]) -> None:
        self.tries = tries
        self.cards: list[tuple[object, CardCounters]] = []
        self.test: tuple[str, str] | None = None
        self.pin_senders: set[tuple[str, str]] = set()

    def start_test(self, data, result) -> None:
        self.test = (Path(data.source).name, data.name)

    def end_test(self, data, result) -> None:
        self.test = None

    def _watch_pins_sent(self, card) -> None:
        process = card.process

        def noting(apdu: bytes) -> bytes:
            if len(apdu) > 5 and apdu[1] in (0x20, 0x24) and self.test:  # a header, Lc and data
                self.pin_senders.add(self.test)
            return process(apdu)

        card.process = noting

    def end_keyword(self, data, result) -> None:
        try:
            library = BuiltIn().get_library_instance("harness.keywords.JPKILibrary")
        except RuntimeError:
            return
        reader = library.ctx.reader
        rig = rig_of(reader)
        card = None if rig is None else rig.card
        if card is None or any(card is seen for seen, _ in self.cards):
            return
        for name, value in self.tries.items():
            if name in card.pins():
                card.pins()[name].tries_left = value
        counters = CardCounters()
        counters.attach(card)
        self._watch_pins_sent(card)
        self.cards.append((card, counters))

    def state(self) -> dict:
        """Per PIN over every card object the run used: the lowest counter and the sum of wrong VERIFYs."""
        merged: dict[str, dict] = {}
        for card, counters in self.cards:
            for name, pin in counters.state(card)["pins"].items():
                entry = merged.setdefault(name, {**pin, "wrong_verifies": 0})
                entry["lowest"] = min(entry["lowest"], pin["lowest"])
                entry["start"] = min(entry["start"], pin["start"])
                entry["wrong_verifies"] += pin["wrong_verifies"]
                entry["tries_left"] = pin["tries_left"]
        return merged


# -- the harness side --------------------------------------------------------------------------------------
def inventory(tmp: Path, uris: dict[str, str], cell: int) -> Path:
    """Lab names are unique per cell: the in-process guard's knowledge must not carry from one cell's card
    to the next (it is kept per device name for the life of the process, as it should be)."""
    path = tmp / "lab.toml"
    text = ""
    for kind, uri in uris.items():
        names = {k: f"GUARD_{kind.upper()}_{k.upper()}" for k in GOOD[kind]}
        env = ", ".join(f'{k} = "{v}"' for k, v in names.items())
        text += (f'[devices.lab-{kind}-{cell}]\nuri = "{uri}"\n[devices.lab-{kind}-{cell}.card]\nkind = "{kind}"\n'
                 f'expendable = false\nholder = "{kind}"\npin_env = {{ {env} }}\n\n')
    path.write_text(text, encoding="utf-8")
    return path


def pin_environment(config: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIL_", "GUARD_"))}
    for kind, pins in GOOD.items():
        for name, good in pins.items():
            env[f"GUARD_{kind.upper()}_{name.upper()}"] = config.pins.get(name, good)
    return env


def runs_for(transport: str, kind: str) -> list[list[str]]:
    """The runs of a cell, in order. Served cards get the terminal suites first, in their own ``hil run``, so a
    wrong configured PIN is first met at the terminal's keypad; the card suite follows in a second process that
    knows nothing of the first (a lab re-running on the card as the first run left it)."""
    if kind == "phone":
        return [["phone"]]
    if transport == "in-process":
        return [["terminals", "card"]]
    if transport == "pcsc":
        return [["terminals"], ["card"]]
    return [["terminals"], ["card", *FOCUSED]]


def focused_tests() -> set[tuple[str, str]]:
    """(file, test) of the terminal and card tests the served transports' cells select with :data:`FOCUSED`."""
    suite = TestSuiteBuilder().build(str(REPO / "robot" / "terminals"), str(REPO / "robot" / "card"))
    suite.configure(include_tags=FOCUSED[1::2])
    return {(Path(test.source).name, test.name) for test in suite.all_tests}


def run_served(tmp: Path, lab: Path, env: dict[str, str], device: str, suites: list[str]) -> tuple[int, str, Path]:
    out = tmp / f"out-{device}"
    proc = subprocess.run([*hil_command(), "run", *suites, "--device", device, "--inventory",
                           str(lab), "--outputdir", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    return proc.returncode, proc.stderr, out


def run_in_process(tmp: Path, lab: Path, env: dict[str, str], device: str, suites: list[str],
                   probe: InProcessProbe) -> tuple[int, str, Path]:
    out = tmp / f"out-{device}"
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env, HIL_INVENTORY=str(lab))
    try:
        rc = robot.run(*[str(REPO / "robot" / s) for s in suites], outputdir=str(out), variable=[f"DEVICE:{device}"],
                       listener=[probe], name="JPKI HIL", stdout=io.StringIO(), stderr=io.StringIO(),
                       log="NONE", report="NONE")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rc, "", out


def outcomes(out: Path) -> tuple[dict[str, int], list[str], str]:
    """(pass/fail/skip counts, failure messages, status of the raw-VERIFY requirement HIL-GRD-001)."""
    if not (out / "output.xml").exists():
        return {"passed": 0, "failed": 0, "skipped": 0}, [], "not run"
    result = ExecutionResult(str(out / "output.xml"))
    stats = result.statistics.total
    messages: list[str] = []
    raw = ["not run"]

    def walk(suite) -> None:
        messages.extend(t.message for t in suite.tests if t.status == "FAIL")
        raw.extend(t.status for t in suite.tests if "HIL-GRD-001" in t.tags)
        for child in suite.suites:
            walk(child)

    walk(result.suite)
    return {"passed": stats.passed, "failed": stats.failed, "skipped": stats.skipped}, messages, raw[-1]


def preflight_stopped(rc: int, out: Path) -> bool:
    return rc == 2 and not (out / "output.xml").exists()


def check_card(state: dict, kinds: tuple[str, ...]) -> list[str]:
    """The promise, at the card: no PIN below its reserve (unless it started there: then untouched), none at 0."""
    problems = []
    for name in kinds:
        pin = state[name]
        reserve = RESERVE[name]
        if pin["lowest"] == 0 or pin["tries_left"] == 0:
            problems.append(f"{name} reached 63C0")
        if pin["start"] >= reserve and pin["lowest"] < reserve:
            problems.append(f"{name} went from {pin['start']} to {pin['lowest']}, below the reserve {reserve}")
        if pin["start"] < reserve and (pin["wrong_verifies"] or pin["lowest"] < pin["start"]):
            problems.append(f"{name} started below the reserve and still got {pin['wrong_verifies']} wrong VERIFYs")
        if pin["changes"]:
            problems.append(f"{name} was changed {pin['changes']} times")
    return problems


def describe(state: dict, kinds: tuple[str, ...]) -> str:
    return ", ".join(f"{n} {state[n]['start']}→{state[n]['lowest']}→{state[n]['tries_left']} "
                     f"({state[n]['wrong_verifies']} wrong)" for n in kinds)


def merged_rows(existing: str, session: str) -> list[str]:
    """This module's rows, plus the rows other shards of the same test command (``HIL_TEST_SESSION``), or this
    shard between two of its cells, wrote before (each row once); a file from an earlier command is replaced,
    never merged. Rows sort in the matrix's cell order (stable: a cell's rows stay in the order its runs came)."""
    rows = list(ROWS)
    if session and f"<!-- test session {session} -->" in existing:
        rows += [line for line in existing.splitlines() if line.startswith("| ") and " | " in line
                 and line.split(" | ")[0].removeprefix("| ") in TRANSPORTS]
    rows = list(dict.fromkeys(rows))  # a shard that ran cells apart wrote its first ones already
    order = {(t, CONFIGS[c].name): i for i, (t, c) in enumerate(CELLS)}
    return sorted(rows, key=lambda row: order.get(tuple(row.removeprefix("| ").split(" | ")[:2]), len(order)))


@pytest.fixture(scope="module", autouse=True)
def matrix_report():
    yield
    MATRIX_FILE.parent.mkdir(exist_ok=True)
    session = os.environ.get("HIL_TEST_SESSION", "")
    header = ("| transport | configuration | device: suites (one run per row) | passed/failed/skipped (exit) | "
              "raw VERIFY refused (HIL-GRD-001) | guard messages | card side per PIN after the row's run: "
              "start→lowest→now (wrong VERIFYs counted by the card) |\n|---|---|---|---|---|---|---|\n")
    with (MATRIX_FILE.parent / ".guard-matrix.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # shards of one test command write their rows in turn
        existing = MATRIX_FILE.read_text(encoding="utf-8") if MATRIX_FILE.exists() else ""
        mark = f"<!-- test session {session} -->\n" if session else ""
        MATRIX_FILE.write_text(mark + header + "\n".join(merged_rows(existing, session)) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("transport", "config_name"), CELLS, ids=[f"{t}-{c.replace(' ', '_')}" for t, c in CELLS])
def test_a_guarded_card_never_loses_a_pin(transport, config_name, tmp_path, pcscd):
    config = CONFIGS[config_name]
    kinds = kinds_for(transport, config)
    problems: list[str] = []
    # vpcd's two slots; nfcpy on any free UDP port (a fixed one can be some other socket's ephemeral port)
    ports = {"card": 35963, "phone": 35964} if transport == "pcsc" else {"card": 0, "phone": 0}
    servers: dict[str, ServedCard] = {}
    try:
        if transport != "in-process":
            for kind in kinds:
                servers[kind] = ServedCard(tmp_path, kind, transport, config.tries, ports[kind])
            uris = {kind: server.uri for kind, server in servers.items()}
        else:
            uris = {"card": "virtual:card?expendable=0", "phone": "virtual:phone?expendable=0"}
        cell = CELLS.index((transport, config_name))
        lab = inventory(tmp_path, uris, cell)
        env = pin_environment(config)
        for kind in kinds:
            device = f"lab-{kind}-{cell}"
            seen_expected = False
            applies = any(k in GOOD[kind] for k in config.pins) or bool(config.tries)
            for suites in runs_for(transport, kind):
                if transport == "in-process":
                    probe = InProcessProbe(config.tries)
                    rc, stderr, out = run_in_process(tmp_path, lab, env, device, suites, probe)
                    state = probe.state()
                    if kind == "card" and not config.expect:  # the whole suites, every PIN accepted
                        unselected = probe.pin_senders - focused_tests()
                        if not probe.pin_senders or unselected:
                            problems.append(f"tests that send a PIN but that the served cells' tags leave out: "
                                            f"{sorted(unselected)} (of {len(probe.pin_senders)} that send one)")
                else:
                    rc, stderr, out = run_served(tmp_path, lab, env, device, suites)
                    state = servers[kind].state()  # the card's own account, cumulative over the cell's runs
                counts, messages, raw_verify = outcomes(out)
                preflight = preflight_stopped(rc, out)
                if "card" in suites and not preflight and raw_verify != "PASS":
                    problems.append(f"card: the raw VERIFY requirement HIL-GRD-001 is {raw_verify}")
                pins = ("auth", "sign", "text", "number_a", "number_b") if kind == "card" else ("auth", "sign")
                pins = tuple(p for p in pins if p in state)
                problems += [f"{kind} after {'+'.join(suites[:2])}: {p}" for p in check_card(state, pins)]
                guard_lines = [m for m in messages if config.expect and config.expect in m]
                seen_expected |= bool(guard_lines) or (preflight and config.expect in stderr)
                unexplained = [m for m in messages if not any(word in m for word in GUARD_WORDS)]
                if config.expect and applies and len(unexplained) > counts["failed"] // 2:
                    problems.append(f"{kind}: most failures are not the guard's: {unexplained[:3]}")
                if not config.expect and (counts["failed"] or rc != 0):
                    problems.append(f"{kind}: correct PINs but {counts['failed']} failed (exit {rc}): {messages[:3]}")
                refusals = [m for m in messages if any(word in m for word in REFUSALS)]
                shown = (f"pre-flight: {stderr.strip().removeprefix('hil: error: ')[:90]}" if preflight
                         else f"{len(guard_lines)} × '{config.expect}'; {len(refusals)} guard refusals in all"
                         if config.expect else "—")
                named = " + ".join(x for x in suites if x in ("card", "terminals", "phone"))
                focused = " (PIN-touching tags)" if "--include" in suites else ""
                ROWS.append(f"| {transport} | {config.name} | {kind}: {named}{focused} | "
                            f"{counts['passed']}/{counts['failed']}/{counts['skipped']} ({rc}) | "
                            f"{raw_verify if 'card' in suites else '—'} | {shown} | {describe(state, pins)} |")
            if config.expect and applies and not seen_expected:
                problems.append(f"{kind}: no requirement failed with {config.expect!r}")
        if transport in PHONE_ON and "phone" not in kinds:
            ROWS.append(f"| {transport} | {config.name} | phone: not run: the phone has no {' or '.join(config.pins)} "
                        "PIN, so its run would be the correct-PINs row's | — | — | — | — |")
    finally:
        for server in servers.values():
            server.stop()
    assert not problems, "; ".join(problems)
