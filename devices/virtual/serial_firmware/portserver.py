"""A serial port served over TCP on 127.0.0.1: RFC 2217 (pyserial's PortManager) or a raw socket.

This is the lab's ser2net in a thread: the firmware's pty becomes ``rfc2217://127.0.0.1:PORT``
(or ``socket://127.0.0.1:PORT``), so the host runs pyserial's real RFC 2217 client. One client
at a time; a second one is turned away (its connection is closed) while the first is served.

A pty has no modem lines and refuses dtr/rts and parity changes (PLATFORM-NOTES), so the
port handed to PortManager is :class:`PtyLine`: it records the line settings the client asks
for (a test can read them) and answers them, but leaves the pty raw 8N1.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

import serial
from serial import SerialException
from serial.rfc2217 import PortManager

ACCEPT_POLL = 0.05
RECV_POLL = 0.05
REFUSE_GRACE = 0.5  # how long a waiting connection waits for the served client's end before it is turned away


class PtyLine:
    """The port as PortManager sees it: settings recorded, modem lines fixed (CTS, DSR, CD up)."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.settings: dict[str, object] = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1,
                                            "xonxoff": False, "rtscts": False, "dtr": True, "rts": True,
                                            "break_condition": False}
        self.cts = self.dsr = self.cd = True
        self.ri = False

    def __getattr__(self, name: str) -> object:
        settings = self.__dict__.get("settings", {})
        if name in settings:
            return settings[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: object) -> None:
        if name in self.__dict__.get("settings", {}):
            self.settings[name] = value
        else:
            super().__setattr__(name, value)

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def reset_output_buffer(self) -> None:
        self.port.reset_output_buffer()


class _Connection:
    """The thread-safe ``write`` PortManager needs."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)


class PortServer:
    """Serves the serial device ``device`` on 127.0.0.1. Lifecycle: ``start()`` → ``url`` → ``stop()``."""

    def __init__(self, device: str, *, port: int = 0, rfc2217: bool = True, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the port server listens on 127.0.0.1 only")
        self.device = device
        self.host = host
        self.requested_port = port
        self.rfc2217 = rfc2217
        self.line: PtyLine | None = None
        self.clients_served = 0
        self.clients_refused = 0
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client_lock = threading.Lock()
        self._client: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("port server not started")
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"{'rfc2217' if self.rfc2217 else 'socket'}://{self.host}:{self.port}"

    def start(self, timeout: float = 5.0) -> PortServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.requested_port))
        listener.listen(2)
        listener.settimeout(ACCEPT_POLL)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"portserver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._client_lock:
            if self._client is not None:
                with contextlib.suppress(OSError):
                    self._client.shutdown(socket.SHUT_RDWR)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"port server on {self.device} did not stop within {timeout:g} s")
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> PortServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()  # type: ignore[union-attr]
            except TimeoutError:
                continue
            except OSError:
                return
            self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(RECV_POLL)
        try:
            port = serial.Serial(self.device, timeout=RECV_POLL)
        except SerialException:
            sock.close()
            return
        with self._client_lock:
            self._client = sock
        self.clients_served += 1
        connection = _Connection(sock)
        line = PtyLine(port)
        self.line = line
        manager = PortManager(line, connection) if self.rfc2217 else None
        done = threading.Event()
        pump = threading.Thread(target=self._serial_to_socket, args=(port, connection, manager, done),
                                name=f"portserver-pump-{self.port}", daemon=True)
        pump.start()
        try:
            self._socket_to_serial(sock, port, manager, done)
        finally:
            done.set()
            pump.join(2.0)
            with self._client_lock:
                self._client = None
            with contextlib.suppress(OSError):
                sock.close()
            port.close()

    @staticmethod
    def _gone(sock: socket.socket, wait: float = 0.0) -> bool:
        """Whether the served client has closed its end, waiting up to ``wait`` seconds for its end or data."""
        try:
            if not select.select([sock], [], [], wait)[0]:
                return False  # nothing to read: not even an end
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (TimeoutError, BlockingIOError):
            return False
        except OSError:
            return True

    def _refuse_waiting(self, sock: socket.socket) -> None:
        """Closes connections that arrive while a client is served (the port is busy). A client that closed and
        at once connected again is not refused: its old connection has ended, and the new one is served next.
        The old connection's end may be seen after the new one's arrival (on a loaded machine the two come
        through different CPUs' loopback queues; a pre-flight that closed and the part that connected at once
        was turned away, 'Broken pipe'), so a waiting connection first waits REFUSE_GRACE for it."""
        try:
            if not select.select([self._listener], [], [], 0)[0]:
                return  # nobody waits
        except (OSError, ValueError):
            return
        if self._gone(sock, wait=REFUSE_GRACE):
            return
        try:
            extra, _ = self._listener.accept()  # type: ignore[union-attr]
        except (TimeoutError, BlockingIOError, OSError):
            return
        self.clients_refused += 1
        extra.close()

    def _socket_to_serial(self, sock: socket.socket, port: serial.Serial, manager: PortManager | None,
                          done: threading.Event) -> None:
        self._listener.settimeout(0)  # type: ignore[union-attr]
        try:
            while not self._stop.is_set() and not done.is_set():
                self._refuse_waiting(sock)
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                if manager is not None:
                    data = b"".join(manager.filter(data))
                if data:
                    try:
                        port.write(data)
                    except SerialException:
                        return
        finally:
            self._listener.settimeout(ACCEPT_POLL)  # type: ignore[union-attr]

    def _serial_to_socket(self, port: serial.Serial, connection: _Connection, manager: PortManager | None,
                          done: threading.Event) -> None:
        last_modem_check = time.monotonic()
        while not self._stop.is_set() and not done.is_set():
            try:
                data = port.read(max(1, min(port.in_waiting, 4096)))
            except (SerialException, OSError, TypeError):
                done.set()
                return
            try:
                if data:
                    connection.write(b"".join(manager.escape(data)) if manager is not None else data)
                if manager is not None and time.monotonic() - last_modem_check > 1.0:
                    manager.check_modem_lines()
                    last_modem_check = time.monotonic()
            except OSError:
                done.set()
                return
