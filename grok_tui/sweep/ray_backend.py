"""The Ray backend: one Ray task per group (ensemble chunk), one GPU each where the cluster has GPUs.

Only join clusters you trust: a task's results come back by pickle (Ray's own transport). The run
directories a task wrote travel back as a tar.gz that is extracted with tarfile's "data" filter
(absolute paths and links out of the runs directory are refused); without that filter (Python
before 3.11.4) the backend refuses to extract at all.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from grok_tui.errors import ConfigError
from grok_tui.report import Reporter
from grok_tui.sweep.group import run_group
from grok_tui.sweep.plan import Member, Plan, group_info


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


def run_ray(p: Plan, runs_dir: Path, reporters: list[Reporter] | tuple = (), address: str | None = None) -> dict[str, dict]:
    """Send each group (ensemble chunk) to a Ray task, one GPU each where the cluster has GPUs. A task
    cannot stream its reports: `reporters` hear each group's start, and its progress and member ends
    when it comes back."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'grok-tui[ray]'.") from None
    if not hasattr(tarfile, "data_filter"):
        raise ConfigError("--backend ray needs Python 3.11.4 or newer (tarfile's data filter).")
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(_ray_task).options(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=0)
        refs = {}
        for i, g in enumerate(p.groups):
            refs[task.remote(p.sweep_id, [m.payload() for m in g])] = i
            for rep in reporters:
                rep.on_group_start(i, group_info(g))
        results: dict[str, dict] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                out = ray.get(done[0])
                with tarfile.open(fileobj=io.BytesIO(out["tar"]), mode="r:gz") as tar:
                    # the "data" filter refuses absolute paths and links out of runs_dir
                    tar.extractall(runs_dir, filter="data")
                results.update(out["results"])
                for rep in reporters:
                    rep.on_progress(refs[done[0]], p.groups[refs[done[0]]][0].cfg.train.steps)
                    for run_id, s in out["results"].items():
                        rep.on_member_end(run_id, s)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            raise
        return results
    finally:
        if started:
            ray.shutdown()
