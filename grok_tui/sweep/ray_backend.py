"""The Ray backend: one Ray task per group (ensemble chunk), one GPU each where the cluster has GPUs.

Control, as far as Ray allows: a stop (Ctrl-C, SIGTERM, `grok-tui stop` of the sweep's process) cancels
the tasks not come back and records their members as stopped (their run directories stay on the Ray
workers' scratch space, so the summary says so); Ray tasks cannot pause, which the sweep says in one
sentence at its start and whenever a pause is asked for (the request is dropped, training goes on).

Only join clusters you trust: a task's results come back by pickle (Ray's own transport). The run
directories a task wrote travel back as a tar.gz that is extracted with tarfile's "data" filter
(absolute paths and links out of the runs directory are refused); without that filter (Python
before 3.11.4) the backend refuses to extract at all.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from grok_tui.errors import ConfigError
from grok_tui.report import Reporter
from grok_tui.sweep.group import run_group
from grok_tui.sweep.plan import Member, Plan, group_info
from grok_tui.train.loop import Control

CANNOT_PAUSE = ("Ray sweeps cannot pause: a pause is ignored and training goes on; a stop (Ctrl-C, grok-tui stop) "
                "cancels the tasks still out.")
CANCELLED = ("the sweep was stopped before its Ray task came back; the task was cancelled and its run directory "
             "was not brought back.")


def _ray_task(sweep_id: str, payload: list[dict]) -> dict:
    """Runs in a Ray worker: train one group into a scratch directory, return it as a tar.gz."""
    from grok_tui.train import malloc

    malloc.keep_freed_memory()  # a Ray worker is not started through the CLI's main
    members = [Member.from_payload(d) for d in payload]
    with tempfile.TemporaryDirectory(prefix="grok-sweep-") as tmp:
        results = run_group(members, Path(tmp), sweep_id)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for m in members:
                tar.add(Path(tmp) / m.run_id, arcname=m.run_id)
    return {"results": results, "tar": buf.getvalue()}


def run_ray(p: Plan, runs_dir: Path, reporters: list[Reporter] | tuple = (), address: str | None = None,
            control: Control | None = None, note: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Send each group (ensemble chunk) to a Ray task, one GPU each where the cluster has GPUs. A task
    cannot stream its reports: `reporters` hear each group's start, and its progress and member ends
    when it comes back. `control.stop` (or a Ctrl-C) cancels the tasks still out, whose members are
    recorded as stopped; a pause cannot be honoured and `note` says so (at the start and when asked)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'grok-tui[ray]'.") from None
    if not hasattr(tarfile, "data_filter"):
        raise ConfigError("--backend ray needs Python 3.11.4 or newer (tarfile's data filter).")
    control = control or Control()
    say = note or (lambda text: None)
    say(CANNOT_PAUSE)
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(_ray_task).options(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=0)
        refs = {}
        for i, g in enumerate(p.groups):
            if control.stop.is_set():
                break
            refs[task.remote(p.sweep_id, [m.payload() for m in g])] = i
            for rep in reporters:
                rep.on_group_start(i, group_info(g))
        results: dict[str, dict] = {}
        pending = list(refs)
        while pending and not control.stop.is_set():
            try:
                if control.pause.is_set():  # Ray tasks cannot pause: say so, and go on
                    control.pause.clear()
                    say(CANNOT_PAUSE)
                done, pending = ray.wait(pending, num_returns=1, timeout=0.2)
                if not done:
                    continue
                out = ray.get(done[0])
                with tarfile.open(fileobj=io.BytesIO(out["tar"]), mode="r:gz") as tar:
                    # the "data" filter refuses absolute paths and links out of runs_dir
                    tar.extractall(runs_dir, filter="data")
                results.update(out["results"])
                for rep in reporters:
                    rep.on_progress(refs[done[0]], p.groups[refs[done[0]]][0].cfg.train.steps)
                    for run_id, s in out["results"].items():
                        rep.on_member_end(run_id, s)
            except KeyboardInterrupt:  # a Ctrl-C the signal handler did not take: a stop
                control.stop.set()
        for ref in pending:  # stopped: the tasks still out are cancelled, their members stopped
            ray.cancel(ref, force=True)
            for m in p.groups[refs[ref]]:
                s = {"status": "stopped", "error": CANCELLED, "steps_run": None}
                results[m.run_id] = s
                for rep in reporters:
                    rep.on_member_end(m.run_id, s)
        return results
    finally:
        if started:
            ray.shutdown()
