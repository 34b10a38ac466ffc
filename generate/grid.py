"""`generate grid`: enumerate every run of a spec, skip finished ones, run the rest on an executor.

A finetuning run is finished when its shard (parquet + metadata) exists and validates; a pretraining job when
its model folder carries the completion marker. Both are written atomically, so after a crash or ``kill -9``
nothing finished is redone and nothing half-written is trusted (a crash loses at most the runs in flight).
Pretraining jobs run first. Unfinished finetuning runs of one size are trained several per process (stacked in one
loop, :func:`instdecay.generate.finetune.run_finetune_group`): by default the finetuning runs of one pretrained
model, or ``runs_per_process`` at a time. A failed job is reported and retried on the next invocation without
stopping the others; a worker process that dies (e.g. killed for memory) breaks its pool, and the groups it took
down run again in a fresh pool.
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from ..release.shards import ShardError, read_shard, read_task, shard_paths
from .spec import Spec, load_spec

Executor = Literal["local", "process", "ray"]


@dataclass(frozen=True)
class Job:
    kind: Literal["pretrain", "finetune"]
    size: str
    pretrain_seed: int
    finetune_seed: int | None = None

    @property
    def name(self) -> str:
        if self.kind == "pretrain":
            return f"pretrain {self.size} seed {self.pretrain_seed}"
        return f"{self.size}__p{self.pretrain_seed}__f{self.finetune_seed}"


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: Literal["done", "skipped", "failed"]
    detail: str = ""


def jobs(spec: Spec) -> list[Job]:
    out = [Job("pretrain", s.name, p.seed) for s in spec.sizes for p in s.pretrained if p.pretrain is not None]
    out += [Job("finetune", s.name, p.seed, f) for s in spec.sizes for p in s.pretrained for f in spec.finetune_seeds]
    return out


def finished(spec: Spec, job: Job) -> tuple[bool, str]:
    """Whether a job's output exists and validates; the detail flags a shard written under another spec hash."""
    from .pretrain import DONE_MARKER

    size = spec.size(job.size)
    if job.kind == "pretrain":
        p = next(p for p in size.pretrained if p.seed == job.pretrain_seed)
        return (Path(spec.pretrained_path(size, p)) / DONE_MARKER).exists(), "already finished"
    from ..release.shards import RunMeta

    meta_stub = RunMeta(spec.task.name, size.family, size.name, 0, "", job.pretrain_seed, job.finetune_seed, ())
    parquet, meta_json = shard_paths(spec.output, meta_stub)
    if not meta_json.exists():
        return False, ""
    try:
        info, instances = read_task(spec.output, spec.task.name)
        meta, _ = read_shard(parquet, meta_json, info, instances)
    except ShardError:
        return False, ""
    if len(meta.checkpoints) != len(size.hyperparameters.checkpoints):
        return False, ""
    if meta.spec_hash != spec.hash:
        return True, (f"finished under spec hash {meta.spec_hash}, the spec is now {spec.hash}: kept; "
                      f"delete the shard to redo it")
    return True, "already finished"


def execute(spec_path: str, group: list[Job], device: str | None = None, precision: str = "auto") -> list[str]:
    """Run one pretraining job, or a group of finetuning runs of one size, in this process (also the entry point
    of process-pool and Ray workers); return what each job wrote."""
    spec = load_spec(spec_path)
    if group[0].kind == "pretrain":
        from .pretrain import pretrain

        return [str(pretrain(spec, j.size, j.pretrain_seed, device=device, progress=False, precision=precision))
                for j in group]
    from .finetune import run_finetune_group

    runs = [(j.pretrain_seed, j.finetune_seed) for j in group]
    return [str(p) for p in run_finetune_group(spec, group[0].size, runs, device=device, progress=False,
                                               precision=precision)]


def _safe(spec_path: str, group: list[Job], device: str | None, precision: str = "auto") -> list[Outcome]:
    try:
        spec = load_spec(spec_path)
        done = [j for j in group if finished(spec, j)[0]]  # finished meanwhile (e.g. by `generate run`): not redone
        todo = [j for j in group if j not in done]
        written = execute(spec_path, todo, device, precision) if todo else []
        return ([Outcome(j, "skipped", "already finished") for j in done]
                + [Outcome(j, "done", w) for j, w in zip(todo, written)])
    except Exception as exc:  # noqa: BLE001 - a failed group must not stop the others
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return [Outcome(j, "failed", last) for j in group]


def groups(batch: list[Job], runs_per_process: int | None) -> list[list[Job]]:
    """Pretraining jobs one by one; finetuning runs of one size together: the runs of one pretrained model, or
    chunks of ``runs_per_process`` runs."""
    out: list[list[Job]] = []
    for job in batch:
        last = out[-1] if out else None
        same = (last is not None and job.kind == "finetune" and last[0].kind == "finetune" and last[0].size == job.size
                and (len(last) < runs_per_process if runs_per_process else last[0].pretrain_seed == job.pretrain_seed))
        if same:
            last.append(job)
        else:
            out.append([job])
    return out


def _init_worker(parent_pid: int, threads: int) -> None:
    """Process-pool worker set-up: die with the parent (Linux parent-death signal; elsewhere a watch thread),
    and share the machine's cores among the workers instead of each taking all of them."""
    _die_with_parent(parent_pid)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills this worker when its parent dies
    else:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


POOL_ROUNDS = 3  # a worker that dies breaks its pool: the groups in it get this many fresh pools in all


def _pool_round(task: Callable[..., list[Outcome]], batch: list[list[Job]], workers: int, device: str | None,
                precision: str, on_done: Callable[[list[Outcome]], None]) -> list[list[Job]]:
    """Run the groups on a fresh process pool, one fresh process per group (memory a group leaves behind never
    accumulates); return the groups lost because a worker died (killed, e.g. by the out-of-memory killer), which
    leaves the pool unusable."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    lost: list[list[Job]] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(os.getpid(), threads), **fresh) as pool:
        futures = {pool.submit(task, group, device, precision): group for group in batch}
        for future in as_completed(futures):
            try:
                on_done(future.result())
            except BrokenProcessPool:
                lost.append(futures[future])
    if lost:
        print(f"a worker process died (killed, e.g. out of memory): {sum(map(len, lost))} run(s) in flight or queued "
              f"go to a fresh pool", file=sys.stderr)
    return lost


def _run_batch(spec_path: str, batch: list[list[Job]], executor: Executor, workers: int, device: str | None,
               precision: str, ray_address: str | None, num_cpus: float, num_gpus: float,
               on_done: Callable[[list[Outcome]], None]) -> None:
    if executor == "local":
        for group in batch:
            on_done(_safe(spec_path, group, device, precision))
    elif executor == "process":
        task = partial(_safe, spec_path)
        for _ in range(POOL_ROUNDS):
            batch = _pool_round(task, batch, workers, device, precision, on_done)
            if not batch:
                return
        on_done([Outcome(j, "failed", f"lost in {POOL_ROUNDS} process pools in a row whose worker died (killed, e.g. "
                                      f"out of memory)") for group in batch for j in group])
    elif executor == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                     log_to_driver=False)
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(_safe)
        pending = {remote.remote(spec_path, group, device, precision): group for group in batch}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                on_done(ray.get(ref))
    else:
        raise ValueError(f"executor: expected 'local', 'process' or 'ray', found {executor!r}")


@contextmanager
def _grid_lock(spec: Spec) -> Iterator[None]:
    """Hold an exclusive lock on the spec's output folder for the grid's lifetime (released by the kernel if the
    process dies): two grids never write the same shards, and temporary files left by a killed grid can be
    removed safely."""
    spec.output.mkdir(parents=True, exist_ok=True)
    with open(spec.output / ".grid.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{spec.output}: another `instdecay generate grid` is running on this output folder; "
                             f"wait for it to finish or stop it") from None
        yield


def clean_stale(spec: Spec) -> int:
    """Remove what a killed writer left behind (atomic_write's ``.<name>.*.tmp`` files, pretraining and vocabulary
    staging folders); call only while holding the grid lock. Returns how many were removed."""
    removed = 0
    for path in spec.output.rglob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    pretrained = spec.work_dir / "pretrained"
    staging = [*pretrained.glob("*/.seed*.*")] if pretrained.exists() else []
    staging += [p for s in spec.sizes for pt in s.pretrained if pt.pretrain and pt.pretrain.tokenizer
                for p in Path(pt.pretrain.tokenizer).glob(".vocab.*")]
    for path in staging:
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def run_grid(spec_path: str | Path, *, executor: Executor = "local", workers: int = 1, device: str | None = None,
             ray_address: str | None = None, num_cpus: float = 1, num_gpus: float = 0, progress: bool = True,
             runs_per_process: int | None = None, precision: str = "auto") -> list[Outcome]:
    """Run every unfinished job of the spec; return one outcome per job (done, skipped or failed).

    ``runs_per_process``: finetuning runs of one size trained together in one process (default: the runs of one
    pretrained model); ``precision``: ``auto`` (bf16 autocast where the hardware has it), ``bf16`` or ``fp32``."""
    if runs_per_process is not None and runs_per_process < 1:
        raise ValueError(f"--runs-per-process: expected >= 1, found {runs_per_process}")
    spec = load_spec(spec_path)
    with _grid_lock(spec):
        removed = clean_stale(spec)
        if removed:
            print(f"removed {removed} temporary file(s) or folder(s) left by an interrupted run", file=sys.stderr)
        return _run_grid(str(spec_path), spec, executor, workers, device, precision, ray_address, num_cpus, num_gpus,
                         progress, runs_per_process)


def _run_grid(spec_path: str, spec: Spec, executor: Executor, workers: int, device: str | None, precision: str,
              ray_address: str | None, num_cpus: float, num_gpus: float, progress: bool,
              runs_per_process: int | None) -> list[Outcome]:
    all_jobs = jobs(spec)
    checks = {j: finished(spec, j) for j in all_jobs}
    outcomes = [Outcome(j, "skipped", detail) for j, (done, detail) in checks.items() if done]
    skipped = {o.job for o in outcomes}
    bar = tqdm(total=len(all_jobs), initial=len(skipped), desc=f"grid {spec.name}", disable=not progress)

    def record(done: list[Outcome]) -> None:
        outcomes.extend(done)
        bar.update(len(done))
        bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes))

    for kind in ("pretrain", "finetune"):
        batch = [j for j in all_jobs if j.kind == kind and j not in skipped]
        if kind == "finetune":  # a run whose pretrained model failed cannot start
            failed = {(o.job.size, o.job.pretrain_seed) for o in outcomes if o.status == "failed"}
            record([Outcome(j, "failed", "its pretraining job failed") for j in batch
                    if (j.size, j.pretrain_seed) in failed])
            batch = [j for j in batch if (j.size, j.pretrain_seed) not in failed]
        _run_batch(spec_path, groups(batch, runs_per_process), executor, workers, device, precision, ray_address,
                   num_cpus, num_gpus, record)
    bar.close()
    order = {j: k for k, j in enumerate(all_jobs)}
    return sorted(outcomes, key=lambda o: order[o.job])


def summary(outcomes: list[Outcome]) -> str:
    """A table of the outcomes: counts, then every failure with its reason."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    lines = [f"runs: {counts['done']} done, {counts['skipped']} skipped (already finished), {counts['failed']} failed"]
    stale = [o for o in outcomes if o.status == "skipped" and o.detail != "already finished"]
    lines += [f"warning: {o.job.name}: {o.detail}" for o in stale]
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        width = max(len(o.job.name) for o in failed)
        lines.append(f"{'failed job':<{width}}  reason")
        lines += [f"{o.job.name:<{width}}  {o.detail}" for o in failed]
        lines.append("failed jobs are retried on the next invocation")
    return "\n".join(lines)
