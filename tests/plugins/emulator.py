"""Emulator fixtures: one demo emulator per session, a fresh-demo reset, and a factory for inline scenarios."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from emulator.testing import RunningEmulator, run_emulator


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Iterator[RunningEmulator]:
    """The demo emulator, shared by the session (tests that change it should use ``fresh_emulator``)."""
    with run_emulator("demo", cert_dir=tmp_path_factory.mktemp("emulator-certs")) as running:
        yield running


@pytest.fixture
def fresh_emulator(emulator: RunningEmulator) -> RunningEmulator:
    """The session emulator reset to the demo scenario, with no faults, no call log and the default page size."""
    emulator.reset("demo")
    # Its control requests so far: while no other is sent, it is the demo as reset (``register_and_sync``).
    emulator.fresh_demo_changes = emulator.changes
    return emulator


@pytest.fixture
def spoil(emulator: RunningEmulator) -> Iterator[Callable[[str, str | None], None]]:
    """``spoil(document, mode)``: the emulator's OpenID discovery documents (``"discovery"``) or key sets
    (``"jwks"``) are broken that way until the test ends (or ``spoil(document, None)``)."""
    def spoil(document: str, mode: str | None) -> None:
        if mode is None:
            emulator.control("DELETE", f"entra/{document}")
        else:
            emulator.control("POST", f"entra/{document}", json={"mode": mode})

    yield spoil
    spoil("discovery", None)
    spoil("jwks", None)


@pytest.fixture
def emulator_factory(tmp_path) -> Iterator[Callable[..., RunningEmulator]]:
    """``emulator_factory(scenario, state_file=None, extra_args=())`` starts an emulator stopped after the test."""
    started: list[RunningEmulator] = []

    def start(scenario: str | dict = "demo", state_file=None, extra_args: tuple[str, ...] = ()) -> RunningEmulator:
        running = RunningEmulator(scenario, state_file=state_file, cert_dir=tmp_path / f"certs-{len(started)}",
                                  extra_args=extra_args)
        started.append(running)
        return running.start()

    yield start
    for running in started:
        running.stop()
