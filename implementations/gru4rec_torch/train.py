"""The training loop: epochs of session-parallel steps, logs and checkpoints.

Per epoch: the hidden state starts at zero, the steps come from
:func:`data.session_parallel` (``min_lanes = 2`` without extra samples, so a
lone lane never trains without negatives), a tqdm bar shows progress, and at
the end one line goes to ``train_log.jsonl`` and the whole training state
(model, optimizer, random generators, epoch) to ``checkpoint.pt``, both
written atomically. A restarted run with the same params, seed and data
continues after the last finished epoch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gru4rec_repro.atomic import atomic_path, write_text

from .data import SessionData, session_parallel
from .model import GRU4Rec
from .steps import step_runner

CHECKPOINT = "checkpoint.pt"
TRAIN_LOG = "train_log.jsonl"
SYNC_EVERY = 500  # steps between host syncs (NaN check, progress bar)
DROPOUT_MASKS = "dropout masks: model.dropout_mask (mix32 of key, step, site, element)"


def fingerprint(model: GRU4Rec, data: SessionData) -> str:
    """Identifies a training run: params (but the number of epochs and the
    evaluation batch, so a run can be extended), seed, item index and data."""
    h = hashlib.sha256()
    params = {k: v for k, v in model.params.items() if k not in ("n_epochs", "eval_batch_size")}
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(str(model.seed).encode())
    for a in (model.item_ids, data.items, data.offsets, data.order):
        h.update(np.ascontiguousarray(a).tobytes())
    if model.has_dropout:  # checkpoints from before the counter-based masks hold another stream
        h.update(DROPOUT_MASKS.encode())
    return h.hexdigest()


def _save_checkpoint(path: Path, model: GRU4Rec, epoch: int, key: str, history: list) -> None:
    state = {"fingerprint": key, "epoch": epoch, "history": history, "model": model.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, model: GRU4Rec, key: str, log: logging.Logger) -> tuple[int, list]:
    """Restore ``path`` into ``model`` if it belongs to this run; return (epochs done, log lines)."""
    if not path.exists():
        return 0, []
    try:
        state = torch.load(path, map_location=model.device, weights_only=False)
    except Exception as err:  # a corrupt file must not stop the run: start over
        log.warning("%s: unreadable checkpoint (%s); training from scratch", path, err)
        return 0, []
    if state.get("fingerprint") != key:
        log.warning("%s: checkpoint of another run (params, seed or data differ); training from scratch", path)
        return 0, []
    model.load_state_dict(state["model"])
    log.info("%s: resuming after epoch %d", path, state["epoch"])
    return int(state["epoch"]), list(state["history"])


def train_epoch(model, data: SessionData, progress: bool = True, desc: str = "epoch") -> tuple:
    """One epoch of a GRU4Rec or of a seeds.SeedsTogether; returns (mean loss
    per training event, events, mini-batches), the loss a list with one per
    seed for a SeedsTogether.

    The mean loss is the sum over the epoch's steps of the per-row losses of
    the active lanes, divided by the number of active lane-steps (events):
    the definition both GRU4Rec implementations log (GRU4REC_API.md). The loss
    stays on the device; the host reads it every ``SYNC_EVERY`` steps (NaN
    check, progress bar) and at the end.
    """
    p = model.params
    model.H = model.zero_state(min(p["batch_size"], data.n_sessions))
    min_lanes = 2 if p["n_sample"] == 0 else 1
    dev = model.device
    loss_sum = torch.zeros(model.loss_shape, device=dev)
    events = steps = 0
    total = data.n_events - data.n_sessions
    bar = tqdm(total=total, disable=not progress, desc=desc, unit="ev", mininterval=2, smoothing=0.05)
    last_sync = 0
    run_step = step_runner(model, loss_sum)  # eager, or replays of a CUDA graph (steps.py)
    for step in session_parallel(data, p["batch_size"], min_lanes=min_lanes):
        run_step(step, model.next_negatives())
        events += len(step.in_idx)
        steps += 1
        if steps % SYNC_EVERY == 0:
            mean = float(loss_sum.sum()) / events / max(1, loss_sum.numel())
            if not np.isfinite(mean):
                raise FloatingPointError(f"{desc}: loss became {mean} after {steps} mini-batches")
            bar.update(events - last_sync)
            bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
            last_sync = events
    run_step.finish()
    bar.update(events - last_sync)
    bar.close()
    mean = (loss_sum.double().cpu() / max(events, 1)).tolist()  # a float, or one per seed
    if not np.all(np.isfinite(mean)):
        raise FloatingPointError(f"{desc}: loss is {mean}")
    return mean, events, steps


def train(model: GRU4Rec, data: SessionData, outdir, threads: int, device_label: str,
          progress: bool = True, log: logging.Logger | None = None, checkpoint: bool = True) -> list[dict]:
    """Train ``model`` for ``n_epochs`` on ``data``; returns the per-epoch log lines."""
    log = log or logging.getLogger("gru4rec_torch")
    outdir = Path(outdir)
    key = fingerprint(model, data)
    ckpt = outdir / CHECKPOINT
    done, history = _load_checkpoint(ckpt, model, key, log) if checkpoint else (0, [])
    n_epochs = model.params["n_epochs"]
    for epoch in range(done + 1, n_epochs + 1):
        t0 = time.perf_counter()
        loss, events, steps = train_epoch(model, data, progress, desc=f"epoch {epoch}/{n_epochs}")
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)
        seconds = time.perf_counter() - t0
        line = {"epoch": epoch, "loss": loss, "events": events, "seconds": seconds,
                "events_per_s": events / seconds, "mbatches_per_s": steps / seconds,
                "threads": int(threads), "device": device_label}
        history.append(line)
        log.info("epoch %d/%d: loss %.6f, %.1f s, %.0f events/s, %.1f mini-batches/s",
                 epoch, n_epochs, loss, seconds, line["events_per_s"], line["mbatches_per_s"])
        write_text("".join(json.dumps(h) + "\n" for h in history), outdir / TRAIN_LOG)
        if checkpoint:
            _save_checkpoint(ckpt, model, epoch, key, history)
    if done == n_epochs:
        write_text("".join(json.dumps(h) + "\n" for h in history), outdir / TRAIN_LOG)
    return history


def train_together(models: list[GRU4Rec], data: SessionData, outdirs: list, threads: int, device_label: str,
                   progress: bool = True, log: logging.Logger | None = None,
                   checkpoint: bool = True) -> list[list[dict]]:
    """:func:`train` for several seeds of one run at once (seeds.SeedsTogether);
    returns each seed's log lines.

    Each seed keeps its own folder (``outdirs``), ``train_log.jsonl`` and
    ``checkpoint.pt``, written as :func:`train` writes them, so a seed resumes
    alone or together alike. Seeds whose checkpoints stopped at different
    epochs (a job killed between two seeds' checkpoints) are brought level:
    each epoch trains together only the seeds that have not finished it, so
    no finished epoch is trained again. A log line's ``seconds`` is the time
    of the epoch of all the seeds trained with it (``seeds_together``).
    """
    from .seeds import SeedsTogether

    log = log or logging.getLogger("gru4rec_torch")
    if len(models) != len(outdirs):
        raise ValueError(f"train_together: {len(models)} models but {len(outdirs)} folders")
    outdirs = [Path(o) for o in outdirs]
    keys = [fingerprint(m, data) for m in models]
    done, histories = [], []
    for m, o, k in zip(models, outdirs, keys):
        d, h = _load_checkpoint(o / CHECKPOINT, m, k, log) if checkpoint else (0, [])
        done.append(d)
        histories.append(h)
    n_epochs = models[0].params["n_epochs"]
    group, members = None, None
    for epoch in range(min(done) + 1, n_epochs + 1):
        active = [i for i, d in enumerate(done) if d < epoch]
        if active != members:  # (re)stack the weights of the seeds that train this epoch
            members = active
            group = SeedsTogether([models[i] for i in active]) if len(active) > 1 else models[active[0]]
        t0 = time.perf_counter()
        losses, events, steps = train_epoch(group, data, progress, desc=f"epoch {epoch}/{n_epochs}")
        if models[0].device.type == "cuda":
            torch.cuda.synchronize(models[0].device)
        seconds = time.perf_counter() - t0
        losses = losses if isinstance(losses, list) else [losses]
        log.info("epoch %d/%d, %d seed(s) together: %.1f s, %.0f events/s per seed, losses %s",
                 epoch, n_epochs, len(active), seconds, events / seconds, ", ".join(f"{v:.6f}" for v in losses))
        for i, loss in zip(active, losses):
            line = {"epoch": epoch, "loss": loss, "events": events, "seconds": seconds,
                    "events_per_s": events / seconds, "mbatches_per_s": steps / seconds,
                    "threads": int(threads), "device": device_label, "seeds_together": len(active)}
            histories[i].append(line)
            write_text("".join(json.dumps(h) + "\n" for h in histories[i]), outdirs[i] / TRAIN_LOG)
            if checkpoint:
                _save_checkpoint(outdirs[i] / CHECKPOINT, models[i], epoch, keys[i], histories[i])
            done[i] = epoch
    for i in range(len(models)):  # as train() does for a run found complete
        write_text("".join(json.dumps(h) + "\n" for h in histories[i]), outdirs[i] / TRAIN_LOG)
    return histories
