"""The gateway and the simulator as real processes, for the tests.

The gateway runs on free ports (``--listen 127.0.0.1:0``, an embedded
broker on ``127.0.0.1:0``) with JSON logs; its addresses come from its own
"thingcall-server listening" line, so nothing guesses a port.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[3]
BUILD_HINT = "run `cargo build -p thingcall-server -p thingcall-device --bins` at the repository root"

#: Upper bound for a process to reach a state we wait on (its own log line,
#: a device's presence); generous because CI machines are shared.
STARTUP_SECONDS = 60.0


def binary(env_var: str, name: str) -> Path:
    """The binary named by ``env_var``, else ``debug/<name>`` in
    ``CARGO_TARGET_DIR`` (as .ci/python.sh finds the binaries it runs), else
    in ``<repo>/target``; fails with what to build when it is missing."""
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = Path(os.environ.get(env_var) or target_dir / "debug" / name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{name} not found at {path} (set {env_var} or {BUILD_HINT})")
    return path


def dead_address() -> str:
    """An address nothing listens on: a port bound and released. A client
    pointed there fails with Unavailable if it sends anything, so an
    InvalidArgument from it proves the input was refused before sending."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class Gateway:
    """A running ``thingcall-server``; :meth:`stop` kills it."""

    def __init__(self, args: Sequence[str]) -> None:
        exe = binary("THINGCALL_SERVER_BIN", "thingcall-server")
        env = dict(os.environ, RUST_LOG="warn,thingcall_server=info")
        self._proc = subprocess.Popen(
            [str(exe), "--listen", "127.0.0.1:0", "--embedded-broker-listen", "127.0.0.1:0", "--log-format", "json", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._seen: List[str] = []
        assert self._proc.stderr is not None
        threading.Thread(target=self._pump, args=(self._proc.stderr,), daemon=True).start()
        try:
            listening = self.wait_log("thingcall-server listening")
        except BaseException:
            self.stop()
            raise
        #: The API address (gRPC, gRPC-web, HTTP/JSON), ``host:port``.
        self.grpc: str = listening["fields"]["grpc"]
        #: The embedded broker, ``host:port``.
        self.mqtt: str = listening["fields"]["mqtt"]

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def wait_log(self, message: str, timeout: float = STARTUP_SECONDS) -> Dict[str, Any]:
        """The first (further) JSON log line whose message is ``message``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise AssertionError(f"no log line {message!r} within {timeout}s; stderr so far:\n" + "\n".join(self._seen)) from None
            if line is None:
                raise AssertionError(f"the gateway exited ({self._proc.wait()}) before {message!r}:\n" + "\n".join(self._seen))
            self._seen.append(line)
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("fields", {}).get("message") == message:
                return v

    def stop(self) -> None:
        """Kills the process and reaps it."""
        _kill(self._proc)


class Simulator:
    """A running ``thingcall-sim`` against a broker; :meth:`stop` kills it."""

    def __init__(self, mqtt: str, args: Sequence[str]) -> None:
        exe = binary("THINGCALL_SIM_BIN", "thingcall-sim")
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [str(exe), "--mqtt-url", f"mqtt://{mqtt}", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )

    def stop(self) -> None:
        """Kills the process and reaps it."""
        _kill(self._proc)
        self._log.close()


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
