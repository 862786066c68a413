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
              steps: int, threads: int, device: str, what: str = "GRU4Rec (Keras)", extra: dict | None = None) -> dict:
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
           "backend": compiled.backend(), "versions": compiled.versions(), **(extra or {})}
    records.append(rec)
    log.info("%s epoch %d: loss %.5f, %.1f s, %.0f events/s", what, epoch, loss, seconds, rec["events_per_s"])
    with atomic_path(log_path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return rec


def make_store(model: GRU4Rec, support: np.ndarray | None) -> SampleStore | None:
    """The model's sample store (None without extra negatives), on its own seed stream (not the
    one that initialised the weights)."""
    p = model.p
    if p["n_sample"] <= 0:
        return None
    if support is None:
        raise ValueError("GRU4Rec (Keras): n_sample > 0 needs the item support")
    return SampleStore(support, p["n_sample"], p["sample_alpha"], p["sample_store_size"], model.sample_seed)


def run_epoch(stepper, data: SessionData, p: dict, negatives, desc: str, progress: bool):
    """One epoch of session-parallel steps of ``stepper`` (a GRU4Rec, or seeds.SeedsTogether) from
    zero state; ``negatives()``: the next step's extra negatives. Returns (the per-row losses
    summed over the epoch: a tensor, one per seed for SeedsTogether; lane-steps; steps)."""
    min_lanes = 2 if p["n_sample"] == 0 else 1
    stepper.reset_state()
    events = steps = 0
    loss_sum = None
    bar = tqdm(total=data.n_events - data.n_sessions, desc=desc, disable=not progress, unit="ev", mininterval=1.0)
    for step in session_parallel(data, p["batch_size"], min_lanes=min_lanes):
        if step.keep is not None:
            stepper.keep_lanes(step.keep)
        if step.reset is not None:
            stepper.reset_lanes(step.reset)
        loss = stepper.train_step_tensor(step.in_idx, step.out_idx, negatives())
        loss_sum = loss if loss_sum is None else loss_sum + loss
        events += len(step.in_idx)
        steps += 1
        if steps % 1000 == 0:
            bar.update(events - bar.n)
    bar.update(events - bar.n)
    bar.close()
    return (ops.zeros((), "float32") if loss_sum is None else loss_sum), events, steps


def train(model: GRU4Rec, data: SessionData, outdir: Path, support: np.ndarray | None = None,
          threads: int = 1, device: str = "cpu", progress: bool = True) -> list[dict]:
    """Train ``model`` for ``n_epochs`` on ``data``; return the per-epoch log records."""
    p = model.p
    outdir = Path(outdir)
    store = make_store(model, support)
    key = fingerprint(model, data)
    ckpt = outdir / CHECKPOINT
    done = load_checkpoint(ckpt, model, store, key)
    if done:
        log.info("resuming after epoch %d from %s", done, ckpt)
    log_path = outdir / "train_log.jsonl"
    records = read_log(log_path, done)
    no_negatives = np.zeros(0, np.int32)
    negatives = store.next if store is not None else (lambda: no_negatives)
    for epoch in range(done + 1, p["n_epochs"] + 1):
        t0 = time.perf_counter()
        loss_sum, events, steps = run_epoch(model, data, p, negatives, f"epoch {epoch}/{p['n_epochs']}", progress)
        # INTERFACES.md 3: the per-row losses summed over all steps and lanes / lane-steps
        log_epoch(records, log_path, epoch, float(ops.convert_to_numpy(loss_sum)) / max(events, 1), time.perf_counter() - t0,
                  events, steps, threads, device)
        save_checkpoint(ckpt, model, store, epoch, key)
    model.reset_state()
    return records


def train_together(models: list[GRU4Rec], data: SessionData, outdirs: list, support: np.ndarray | None = None,
                   threads: int = 1, device: str = "cpu", progress: bool = True,
                   batched: bool | None = None) -> list[list[dict]]:
    """:func:`train` for several seeds of one run at once (:class:`.seeds.SeedsTogether`: one
    vmapped step on JAX on a GPU or with ``batched=True``, the seeds' steps one after another
    elsewhere); returns each seed's log records.

    Each seed keeps its own folder (``outdirs``), sample store, ``train_log.jsonl`` and
    ``checkpoint.npz``, written as :func:`train` writes them (the records gain
    ``seeds_together``: how many seeds trained that epoch together; ``seconds`` is the epoch's
    time of all of them), so a seed resumes alone or together alike. Seeds whose checkpoints
    stopped at different epochs (a job killed between two seeds' checkpoints) are brought
    level: each epoch trains together only the seeds that have not finished it (a seed behind
    trains its missing epochs alone, or with the others behind), so no finished epoch is
    trained again.
    """
    from .seeds import SeedsTogether

    if len(models) != len(outdirs):
        raise ValueError(f"train_together: {len(models)} models but {len(outdirs)} folders")
    if not models:
        return []
    outdirs = [Path(o) for o in outdirs]
    p = models[0].p
    stores = [make_store(m, support) for m in models]
    keys = [fingerprint(m, data) for m in models]
    done, records = [], []
    for m, o, st, k in zip(models, outdirs, stores, keys):
        d = load_checkpoint(o / CHECKPOINT, m, st, k)
        if d:
            log.info("seed %d: resuming after epoch %d from %s", m.seed, d, o / CHECKPOINT)
        done.append(d)
        records.append(read_log(o / "train_log.jsonl", d))
    no_negatives = np.zeros(0, np.int32)
    group, members = None, None
    for epoch in range(min(done) + 1, p["n_epochs"] + 1):
        active = [i for i, d in enumerate(done) if d < epoch]
        if active != members:  # (re)stack the seeds that train this epoch
            members = active
            group = SeedsTogether([models[i] for i in active], batched) if len(active) > 1 else models[active[0]]
        if len(active) > 1:
            def negatives(act=active):
                return np.stack([stores[i].next() for i in act]) if p["n_sample"] > 0 else None
        else:
            st = stores[active[0]]
            negatives = st.next if st is not None else (lambda: no_negatives)
        t0 = time.perf_counter()
        loss_sum, events, steps = run_epoch(group, data, p, negatives,
                                            f"epoch {epoch}/{p['n_epochs']} ({len(active)} seeds)", progress)
        losses = np.atleast_1d(ops.convert_to_numpy(loss_sum))
        if len(active) > 1:
            group.sync()
        seconds = time.perf_counter() - t0
        for j, i in enumerate(active):
            log_epoch(records[i], outdirs[i] / "train_log.jsonl", epoch, float(losses[j]) / max(events, 1), seconds,
                      events, steps, threads, device, what=f"GRU4Rec (Keras) seed {models[i].seed}",
                      extra={"seeds_together": len(active)})
            save_checkpoint(outdirs[i] / CHECKPOINT, models[i], stores[i], epoch, keys[i])
            done[i] = epoch
    for m in models:
        m.reset_state()
    return records
