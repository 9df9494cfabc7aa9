"""TUI tests: a copy of the checked-in fixture runs, and a helper that waits for the app.

`async def` tests run under pytest-asyncio (asyncio_mode = "auto" in pyproject.toml)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from helpers import reap
from textual.notifications import Notify

from grok_tui.tui.followed import Launch
from grok_tui.tui.jobs import ConnectJob

FIXTURE_RUNS = Path(__file__).parent.parent / "fixtures" / "runs"


@pytest.fixture
def fixture_runs(tmp_path) -> Path:
    """A writable copy of tests/fixtures/runs (finished, part-trained and diverged runs)."""
    d = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, d)
    return d


@pytest.fixture(autouse=True)
def no_child_left(monkeypatch):
    """Every runner (Launch) and connect job (ConnectJob) an app starts in a test is ended when the test
    ends, passed or failed: both are sessions of their own, so their process groups are killed."""
    started = []
    for cls in (Launch, ConnectJob):
        def start(self, _start=cls.start):
            _start(self)
            started.append(self.proc)

        monkeypatch.setattr(cls, "start", start)
    yield
    for proc in started:
        if proc is not None:
            reap(proc, group=True)


async def wait_for(pilot, cond, timeout: float = 60.0, what: str = "condition") -> None:
    """Let the app run until cond() holds (the child trains in its own process meanwhile)."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.1)
    await asyncio.sleep(0)


def notified(messages: list, text: str) -> bool:
    """Whether the app was asked to show a notification containing `text`: the Notify messages that
    `app.run_test(message_hook=messages.append)` saw (App.notify posts one per toast)."""
    return any(isinstance(m, Notify) and text in m.notification.message for m in messages)
