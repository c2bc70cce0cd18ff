"""Run the emulator as a subprocess for tests and demos, and drive its control API."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
READY_PREFIX = "EMULATOR READY "
START_TIMEOUT = 60.0


class EmulatorFailed(RuntimeError):
    """The emulator process did not start (its output is in the message)."""


class RunningEmulator:
    """A started emulator: ``url``, ``ca_pem`` (path of the CA certificate) and control API helpers."""

    def __init__(self, scenario: str | dict = "demo", state_file: Path | str | None = None,
                 cert_dir: Path | str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="emulator-"))
        self.scenario = scenario
        self.state_file = Path(state_file) if state_file else None
        self.cert_dir = Path(cert_dir) if cert_dir else self._workdir / "certs"
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.ca_pem = ""
        self.log_path = self._workdir / "emulator.log"
        self._session = requests.Session()
        self.changes = 0  # control requests sent that may change its state (all but GETs)

    # --- process ---------------------------------------------------------------------------------------------
    def start(self) -> RunningEmulator:
        scenario_arg = self.scenario
        if isinstance(self.scenario, dict):
            path = self._workdir / "scenario.json"
            path.write_text(json.dumps(self.scenario))
            scenario_arg = str(path)
        command = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(self._port()),
                   "--scenario", str(scenario_arg), "--cert-dir", str(self.cert_dir), *self.extra_args]
        if self.state_file:
            command += ["--state-file", str(self.state_file)]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,  # noqa: S603 - our own CLI
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        line = self._read_ready_line()
        fields = dict(part.split("=", 1) for part in line[len(READY_PREFIX):].split())
        self.url, self.ca_pem = fields["url"], fields["ca"]
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        return self

    def _port(self) -> int:
        if self.url:  # a restart keeps the same address
            return int(self.url.rsplit(":", 1)[1])
        return 0

    def _read_ready_line(self) -> str:
        result: list[str] = []

        def read() -> None:
            for raw in self.process.stdout:
                text = raw.decode(errors="replace").strip()
                if text.startswith(READY_PREFIX):
                    result.append(text)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not result:
            self.stop()
            raise EmulatorFailed(f"emulator did not become ready:\n{self.log()}")
        return result[0]

    def _drain_stdout(self) -> None:
        process = self.process
        if process and process.stdout:
            for _ in process.stdout:
                pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM (the emulator saves its state file), then kill if it does not exit."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> RunningEmulator:
        """Stop and start again on the same port (state survives when a state file is used)."""
        self.stop()
        return self.start()

    @property
    def host_port(self) -> str:
        return self.url.split("://", 1)[1]

    # --- control API -----------------------------------------------------------------------------------------
    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        if method.upper() != "GET":
            self.changes += 1
        response = self._session.request(method, f"{self.url}/_emulator/{path.lstrip('/')}", timeout=60,
                                         verify=self.ca_pem, **kwargs)  # explicit: REQUESTS_CA_BUNDLE would win
        response.raise_for_status()
        return response

    def health(self) -> dict:
        return self.control("GET", "health").json()

    def add_fault(self, path: str, kind: str, *, method: str | None = None, rate: float = 1.0,
                  count: int | None = None, retry_after: float | None = None, delay: float = 1.0) -> str:
        body = {"path": path, "kind": kind, "method": method, "rate": rate, "count": count,
                "retry_after": retry_after, "delay": delay}
        return self.control("POST", "faults", json=body).json()["id"]

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def calls(self, since: int = 0) -> list[dict]:
        return self.control("GET", "calls", params={"since": since}).json()["value"]

    def clear_calls(self) -> None:
        self.control("DELETE", "calls")

    def advance_clock(self, seconds: float) -> dict:
        return self.control("POST", "clock", json={"advance_seconds": seconds}).json()

    def nsg_rules(self, vm_id: str) -> dict:
        return self.control("GET", "nsg-rules", params={"vm": vm_id}).json()

    def forget_jit_requests(self, policy_id: str, containing: str) -> int:
        """Azure's records of the policy's requests whose justification contains ``containing`` disappear (their
        access stays open); returns how many."""
        body = {"policy": policy_id, "containing": containing}
        return self.control("POST", "jit-requests/forget", json=body).json()["forgotten"]

    def reset(self, scenario: str | dict = "demo") -> str:
        """The scenario loaded afresh, with no faults, an empty call log and the default page size (one call)."""
        return self.load_scenario(scenario, fresh=True)

    def load_scenario(self, scenario: str | dict = "demo", **options) -> str:
        body = {"scenario": scenario, **options} if isinstance(scenario, dict) else {"name": scenario, **options}
        return self.control("POST", "scenario", json=body).json()["scenario"]

    def set_page_size(self, size: int) -> None:
        self.control("POST", "config", json={"page_size": size})

    def add_activity(self, *events: dict) -> list[dict]:
        return self.control("POST", "activity", json={"events": list(events)}).json()["value"]


@contextmanager
def run_emulator(scenario: str | dict = "demo", state_file: Path | str | None = None,
                 cert_dir: Path | str | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[RunningEmulator]:
    """Start ``python -m emulator --port 0`` and stop it on exit."""
    emulator = RunningEmulator(scenario, state_file, cert_dir, extra_args)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
