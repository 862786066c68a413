"""N training jobs per GPU on a machine with GPUs: lock-file slots, N per GPU.

The ``run`` command calls :func:`pin_gpu` before PyTorch or TensorFlow is
imported. A job that would use a GPU takes the first free slot (an exclusive
``flock`` on ``<lock dir>/gpu-<id>.lock``, and ``gpu-<id>.<k>.lock`` for the
k-th further job on that GPU), sets ``CUDA_VISIBLE_DEVICES`` to that one GPU,
and holds the lock until the process exits (the kernel releases it even when
the job is killed). A job that finds every slot taken waits for one.

Jobs per GPU: ``$GRU4REC_JOBS_PER_GPU`` (the workflow sets it from the config's
``study.jobs_per_gpu``; default 1). Slots are filled GPU by GPU at each depth:
every GPU's first slot before any GPU's second, so jobs spread over the GPUs
before they share one. With Snakemake's ``--resources gpu=G x N``
(profiles/local-gpu; G GPUs) at most N jobs run on each GPU, deterministically
the lowest free slot.

Nothing is pinned when:

* the job does not train on a GPU (``--device cpu``, or an implementation
  that only runs on the CPU, such as the baselines);
* SLURM started the job (``SLURM_JOB_ID`` is set): SLURM assigned its GPUs and
  set ``CUDA_VISIBLE_DEVICES`` itself;
* ``GRU4REC_GPU_SLOTS=off`` is set;
* the machine has no GPU.

The GPUs to share out are the entries of ``CUDA_VISIBLE_DEVICES`` when it is
set (hand the study a subset: ``CUDA_VISIBLE_DEVICES=4,5,6,7 snakemake ...``),
else the indices ``nvidia-smi -L`` lists. The lock files live in
``$GRU4REC_GPU_LOCK_DIR`` (default: ``<temp dir>/gru4rec_repro-gpu-slots``),
which must be on this machine's own disk, not a shared file system.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Sequence

from .contract import EXTERNAL

log = logging.getLogger("gru4rec_repro.gpuslot")

#: Implementations that train on a GPU when one is there (the baselines are numpy on the CPU;
#: the external implementations of the audit use CUDA when they see a GPU).
GPU_IMPLEMENTATIONS = frozenset({"gru4rec_torch", "gru4rec_keras", *EXTERNAL})

#: Open lock files of this process: the slots stay taken while they are open.
_held: list[IO] = []


def lock_dir() -> Path:
    """Where the slot lock files live (``$GRU4REC_GPU_LOCK_DIR`` or the temp dir)."""
    env = os.environ.get("GRU4REC_GPU_LOCK_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "gru4rec_repro-gpu-slots"


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` entries, else nvidia-smi's indices."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        entries = [e.strip() for e in env.split(",") if e.strip()]
        # CUDA stops at the first invalid entry; "-1" is the usual way to hide every GPU.
        out = []
        for e in entries:
            if e.startswith("-"):
                break
            out.append(e)
        return out
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError) as e:
        log.warning("nvidia-smi -L failed (%s); no GPU slots", e)
        return []
    return [str(i) for i, line in enumerate(ln for ln in listing.splitlines() if ln.startswith("GPU "))]


def jobs_per_gpu() -> int:
    """Training jobs that may share one GPU: ``$GRU4REC_JOBS_PER_GPU`` (default 1)."""
    value = os.environ.get("GRU4REC_JOBS_PER_GPU", "1").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"GRU4REC_JOBS_PER_GPU={value!r}: give a whole number of jobs per GPU, 1 or more "
                         "(study.jobs_per_gpu in the config)")
    return int(value)


def slot_file(directory: Path, gpu: str, k: int) -> Path:
    """The lock file of the ``k``-th job (0-based) on ``gpu``."""
    return directory / (f"gpu-{gpu}.lock" if k == 0 else f"gpu-{gpu}.{k}.lock")


def acquire(gpus: Sequence[str], directory: str | os.PathLike | None = None,
            poll_seconds: float = 2.0, timeout: float | None = None, per_gpu: int = 1) -> str:
    """Take the first free slot among ``gpus``, ``per_gpu`` slots each (waiting for one); return its GPU id.

    The lock is held by this process until it exits (or :func:`release_all`).
    ``timeout``: seconds to wait at most (None: forever); TimeoutError after.
    """
    if not gpus:
        raise ValueError("acquire: no GPUs to choose from")
    if per_gpu < 1:
        raise ValueError(f"acquire: per_gpu must be 1 or more, got {per_gpu}")
    directory = Path(directory) if directory is not None else lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    try:  # several users may share the machine's GPUs: anyone may create lock files
        directory.chmod(0o1777)
    except OSError:
        pass
    start = time.monotonic()
    waited = False
    while True:
        for k, gpu in ((k, gpu) for k in range(per_gpu) for gpu in gpus):
            path = slot_file(directory, gpu, k)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:  # readable and writable by whoever shares the GPUs
                os.fchmod(fd, 0o666)
            except OSError:
                pass
            f = os.fdopen(fd, "r+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            _held.append(f)
            if waited:
                log.info("GPU %s came free after %.0f s", gpu, time.monotonic() - start)
            return gpu
        if timeout is not None and time.monotonic() - start >= timeout:
            raise TimeoutError(f"no free GPU slot among {list(gpus)} ({per_gpu} per GPU) in {directory} "
                               f"after {timeout:.0f} s")
        if not waited:
            log.info("every GPU slot among %s is taken (%s); waiting for one", list(gpus), directory)
            waited = True
        time.sleep(poll_seconds)


def release_all() -> None:
    """Give back every slot this process holds (the process's exit does it too)."""
    while _held:
        f = _held.pop()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def pin_gpu(implementation: str, device: str) -> str | None:
    """Pin this process to one free GPU if it trains on a GPU; return the GPU id (None: not pinned).

    Call before PyTorch or TensorFlow is imported: both read ``CUDA_VISIBLE_DEVICES`` once.
    """
    if device == "cpu" or implementation not in GPU_IMPLEMENTATIONS:
        return None
    if os.environ.get("GRU4REC_GPU_SLOTS", "").lower() in ("off", "0", "no", "false"):
        return None
    if os.environ.get("SLURM_JOB_ID"):
        log.info("SLURM job %s: GPUs as SLURM assigned them (CUDA_VISIBLE_DEVICES=%s)",
                 os.environ["SLURM_JOB_ID"], os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        return None
    gpus = visible_gpus()
    if not gpus:
        return None
    per_gpu = jobs_per_gpu()
    gpu = acquire(gpus, per_gpu=per_gpu)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    log.info("GPU slot: CUDA_VISIBLE_DEVICES=%s (of %s; %d job(s) per GPU; locks in %s)", gpu, ",".join(gpus),
             per_gpu, lock_dir())
    return gpu
