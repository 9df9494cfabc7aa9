"""The one way training reports to its front ends: ``Reporter`` (torch-free, so the CLI's renderers
subclass it without importing the engine).

Every hook names the run it is about, so one reporter follows a single run, an ensemble of K
members or a whole sweep alike: ``train.loop.run_loop`` calls the member hooks and ``on_progress``;
a sweep (``sweep/run.py``, its worker processes and its Ray tasks) adds ``on_start``,
``on_group_start`` and ``on_end``. The rows and events are the ones the run directories get.
"""

from __future__ import annotations


class Reporter:
    """What a front end hears from training; every method is optional (the base does nothing)."""

    def on_start(self, plan: dict) -> None:
        """A sweep begins (its plan, as ``sweep.plan.Plan.describe`` gives it)."""

    def on_group_start(self, group: int, info: dict) -> None:
        """A sweep's group (an ensemble or members one by one) begins."""

    def on_member_start(self, run_id: str, info: dict) -> None:
        """A run begins or resumes: its device, steps, start step, sizes; run_id is "" without a directory."""

    def on_eval(self, run_id: str, row: dict) -> None:
        """An evaluation row (the metrics.jsonl row)."""

    def on_event(self, run_id: str, event: dict) -> None:
        """An event (the events.jsonl line): milestones, warnings, pause, checkpoints, the end."""

    def on_progress(self, group: int, step: int) -> None:
        """Once per evaluation of a group (0 for a single run): the steps its members have taken."""

    def on_member_end(self, run_id: str, summary: dict) -> None:
        """A run ended (finished, stopped, failed or skipped): its final summary."""

    def on_end(self, summary: dict) -> None:
        """A sweep ended: its summary."""


HOOKS = ("on_start", "on_group_start", "on_member_start", "on_eval", "on_event", "on_progress",
         "on_member_end", "on_end")
