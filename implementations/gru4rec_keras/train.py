"""The GRU4Rec training loop: epochs of session-parallel steps, logged and checkpointed.

Every epoch starts from a zero hidden state (as in the authors' code). After
each epoch one line goes to ``train_log.jsonl`` and a checkpoint
(``checkpoint.npz``: weights, optimizer slots, the sampler's and the dropout
generator's state, the epoch) is written atomically; a later run with the same
settings, seed and data resumes after the last finished epoch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
from keras import ops
from tqdm.auto import tqdm

from gru4rec_repro.atomic import atomic_path

from . import compiled
from .data import SessionData, session_parallel
from .model import GRU4Rec
from .sampling import SampleStore

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.npz"
#: bumped when the checkpoint's layout changes (2: packed item-matrix bias and optimizer slots;
#: 3: Keras 3 on any backend, the dropout generator a keras.random.SeedGenerator)
CHECKPOINT_FORMAT = 3


def fingerprint(model: GRU4Rec, data: SessionData) -> str:
    """What a checkpoint must match to be resumed: settings, seed, data."""
    params = {k: v for k, v in model.p.items() if k not in ("n_epochs", "eval_batch_size")}
    h = hashlib.sha256(json.dumps({"params": params, "seed": model.seed, "checkpoint_format": CHECKPOINT_FORMAT},
                                  sort_keys=True).encode())
    h.update(model.item_ids.tobytes())
    h.update(data.items.tobytes())
    h.update(data.offsets.tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, model: GRU4Rec, store: SampleStore | None, epoch: int, key: str) -> None:
    arrays = {f"w.{k}": v for k, v in model.get_weights().items()}
    arrays.update({f"opt.{k}": v.numpy() for k, v in model.optimizer.slots().items()})
    arrays["generator"] = model.generator.state.numpy()  # a keras.random.SeedGenerator's state
    extra = {"epoch": epoch, "key": key, "store": store.get_state() if store else None}
    arrays["info"] = np.array(json.dumps(extra))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_checkpoint(path: Path, model: GRU4Rec, store: SampleStore | None, key: str) -> int:
    """Restore a compatible checkpoint; return the last finished epoch (0 if none usable)."""
    if not path.exists():
        return 0
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        info = json.loads(str(arrays["info"]))
    except Exception as e:  # a damaged file is reported and ignored
        log.warning("%s: unreadable checkpoint (%s); starting from scratch", path, e)
        return 0
    if info.get("key") != key:
        log.info("%s: checkpoint of other settings/data; starting from scratch", path)
        return 0
    model.set_weights({k[2:]: v for k, v in arrays.items() if k.startswith("w.")}, str(path))
    for k, var in model.optimizer.slots().items():
        var.assign(arrays[f"opt.{k}"])
    model.generator.state.assign(arrays["generator"])
    if store is not None and info["store"] is not None:
        store.set_state(info["store"])
    return int(info["epoch"])


def read_log(log_path: Path, done: int) -> list[dict]:
    """The records of the ``done`` epochs already in ``train_log.jsonl`` (when resuming)."""
    if not done or not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()][:done]


def log_epoch(records: list[dict], log_path: Path, epoch: int, loss: float, seconds: float, events: int,
              steps: int, threads: int, device: str, what: str = "GRU4Rec (Keras)") -> dict:
    """Check the epoch's loss, add its record and rewrite ``train_log.jsonl`` atomically.

    Each record names the Keras backend and the versions of Keras and the backend.
    ``loss``: the mean loss per training event (lane-step), the definition both
    GRU4Rec implementations log (the per-row losses summed over the epoch's
    steps and active lanes, divided by the number of lane-steps ``events``).
    """
    if not math.isfinite(loss):
        raise FloatingPointError(f"{what}: loss is {loss} in epoch {epoch}")
    rec = {"epoch": epoch, "loss": loss, "events": events, "seconds": seconds, "events_per_s": events / seconds,
           "mbatches_per_s": steps / seconds, "threads": threads, "device": device,
           "backend": compiled.backend(), "versions": compiled.versions()}
    records.append(rec)
    log.info("%s epoch %d: loss %.5f, %.1f s, %.0f events/s", what, epoch, loss, seconds, rec["events_per_s"])
    with atomic_path(log_path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return rec


def train(model: GRU4Rec, data: SessionData, outdir: Path, support: np.ndarray | None = None,
          threads: int = 1, device: str = "cpu", progress: bool = True) -> list[dict]:
    """Train ``model`` for ``n_epochs`` on ``data``; return the per-epoch log records."""
    p = model.p
    outdir = Path(outdir)
    store = None
    if p["n_sample"] > 0:
        if support is None:
            raise ValueError("GRU4Rec (Keras): n_sample > 0 needs the item support")
        # its own seed stream (not the one that initialised the weights)
        store = SampleStore(support, p["n_sample"], p["sample_alpha"], p["sample_store_size"], model.sample_seed)
    key = fingerprint(model, data)
    ckpt = outdir / CHECKPOINT
    done = load_checkpoint(ckpt, model, store, key)
    if done:
        log.info("resuming after epoch %d from %s", done, ckpt)
    log_path = outdir / "train_log.jsonl"
    records = read_log(log_path, done)
    min_lanes = 2 if p["n_sample"] == 0 else 1
    no_negatives = np.zeros(0, np.int32)
    for epoch in range(done + 1, p["n_epochs"] + 1):
        model.reset_state()
        t0 = time.perf_counter()
        events = steps = 0
        loss_sum = ops.zeros((), "float32")
        bar = tqdm(total=data.n_events - data.n_sessions, desc=f"epoch {epoch}/{p['n_epochs']}",
                   disable=not progress, unit="ev", mininterval=1.0)
        for step in session_parallel(data, p["batch_size"], min_lanes=min_lanes):
            if step.keep is not None:
                model.keep_lanes(step.keep)
            if step.reset is not None:
                model.reset_lanes(step.reset)
            neg = store.next() if store is not None else no_negatives
            loss_sum += model.train_step_tensor(step.in_idx, step.out_idx, neg)
            events += len(step.in_idx)
            steps += 1
            if steps % 1000 == 0:
                bar.update(events - bar.n)
        bar.update(events - bar.n)
        bar.close()
        # INTERFACES.md 3: the per-row losses summed over all steps and lanes / lane-steps
        log_epoch(records, log_path, epoch, float(ops.convert_to_numpy(loss_sum)) / max(events, 1), time.perf_counter() - t0,
                  events, steps, threads, device)
        save_checkpoint(ckpt, model, store, epoch, key)
    model.reset_state()
    return records
