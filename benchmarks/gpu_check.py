"""Every figure the study's plan needs from a GPU, in one run of a few minutes.

    python benchmarks/gpu_check.py --out DIR            # on a GPU machine (benchmarks/gpu_check.sh)
    python benchmarks/gpu_check.py --device cpu --quick --out DIR    # a smoke test on CPU (seconds)

Measures, on RSC15-shaped sessions (``rsc15_like.py``: 37,000 items, 100,000
sessions; the dwell setting on the same sessions boosted with RSC15-like dwell
times), for every setting class of ``config/rsc15.yaml`` the plan prices
(``gru4rec_repro/plan.py``):

* the PyTorch GRU4Rec's training events/s (CUDA graph on a GPU), steady state
  over a timed window after warm-up and capture: ``xe`` (cross-entropy, batch
  32, 2048 samples), ``ranking`` (BPR-max, the same), ``onehot`` (the 2016
  TOP1, BPR and cross-entropy settings, batch 50, no extra samples: the
  slowest of them), ``onehot-1000`` (TOP1 with 1000 units), ``dwell`` (TOP1 on
  boosted sessions); and ranking the test set (``eval``);
* the seeds-together gain: seed-events/s of S seeds trained as one batched
  model over events/s of one seed (``--seeds``, default 5);
* the jobs-per-GPU gain: events/s of N processes training at once on the one
  GPU (each with S seeds together) over one such process (``--jobs``);
* the CUDA graph against eager steps (``steps.graph_against_eager``);
* the Keras GRU4Rec on each backend of ``--keras-backend`` (a subprocess with ``KERAS_BACKEND``
  set; default JAX and torch: the GPU machine has no TensorFlow): one seed, and on JAX the
  seeds-together gain of S seeds as one vmapped step (``implementations/gru4rec_keras/seeds.py``);
  on the backends of ``--keras-jit`` (default torch) also with ``jit_compile: true``
  (``torch.compile``; XLA on TensorFlow), written as ``gru4rec_keras-torch-jit/...``, the figure a
  run with ``jit_compile: true`` is priced by;
* the baselines on this machine's CPU (BPR-MF epoch, POP / S-POP / Item-KNN
  fit, ranking), one thread.

Each measurement is tried on its own: a failure is printed and the run goes
on. ``--budget-s`` bounds the whole run: what would not fit is skipped and
said so. Writes ``DIR/NAME.log`` (everything printed) and
``DIR/NAME-throughput.yaml``, the file ``python -m gru4rec_repro plan
--throughput`` reads (format: ``plan.read_throughput``); commit both under
``benchmarks/logs/`` and the plan reads the figures by default. Exit status 1
when a tensor is not on the device, a capture failed or the graph's training
differs from the eager one.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX next to PyTorch on one GPU

from rsc15_like import RSC15_SESSIONS, SETTINGS, shape_report, synthetic_sessions  # noqa: E402

TOP1_2016 = SETTINGS["top1-2016"]
#: The torch measurements: (plan setting, label, params, data). Several labels of one
#: setting: the plan's figure is the slowest of them.
TORCH_CASES = [
    ("onehot", "top1-2016", TOP1_2016, "plain"),
    ("onehot-1000", "top1-2016-1000", {**TOP1_2016, "layers": [1000]}, "plain"),
    ("xe", "xe", SETTINGS["xe"], "plain"),
    ("ranking", "bprmax", SETTINGS["bprmax"], "plain"),
    ("dwell", "top1-2016-dwell75", TOP1_2016, "dwell"),
    ("onehot", "bpr-2016", {**TOP1_2016, "loss": "bpr"}, "plain"),
    ("onehot", "xe-2016", {**TOP1_2016, "loss": "cross-entropy", "final_act": "linear"}, "plain"),
]
#: Settings of the jobs-per-GPU measurement (the ones with the most GPU-hours first).
JOBS_CASES = ["top1-2016", "top1-2016-1000", "xe", "bprmax", "top1-2016-dwell75"]
KERAS_CASES = [("xe", "xe", SETTINGS["xe"]), ("ranking", "bprmax", SETTINGS["bprmax"]),
               ("onehot", "top1-2016", TOP1_2016)]
#: The torch cases of the quick smoke test (one per code path).
QUICK_CASES = ("top1-2016", "top1-2016-1000", "xe", "top1-2016-dwell75")
#: Parameters the quick smoke test sets over every setting (a small sample store).
QUICK_PARAMS: dict = {}


# ---------------------------------------------------------------- output
class Tee:
    """Everything printed goes to the console and to the log file."""

    def __init__(self, path: Path):
        self.file = open(path, "w")
        self.stdout = sys.stdout

    def write(self, text):
        self.stdout.write(text)
        self.file.write(text)

    def flush(self):
        self.stdout.flush()
        self.file.flush()


def say(*parts) -> None:
    print(*parts, flush=True)


class Budget:
    def __init__(self, seconds: float):
        self.seconds, self.t0 = seconds, time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)

    def fits(self, need: float, what: str) -> bool:
        if self.left() >= need:
            return True
        say(f"  SKIPPED {what}: needs about {need:.0f} s, {self.left():.0f} s of the budget left")
        return False


def attempt(what: str, fn, *args, **kw):
    """fn(*args) or None, printing the failure and going on."""
    try:
        return fn(*args, **kw)
    except Exception as err:  # one failed measurement must not hide the others
        say(f"  FAILED {what}: {type(err).__name__}: {err}")
        say("    " + "    ".join(traceback.format_exc().splitlines(True)[-6:]))
        return None


# ---------------------------------------------------------------- data
def make_data(args) -> dict:
    train = synthetic_sessions(args.items, args.sessions, seed=0)
    test = synthetic_sessions(args.items, args.test_sessions, seed=1)
    test["SessionId"] += 10 ** 8
    test = test[test["ItemId"].isin(set(train["ItemId"]))]
    return {"plain": train, "dwell": dwell_boosted(train), "test": test}


def dwell_boosted(df: pd.DataFrame, threshold: float = 75.0) -> pd.DataFrame:
    """``df`` with RSC15-like dwell times (log-normal: median 57 s, 75th percentile
    128 s; SPEC.md section 1) boosted at ``threshold`` (gru4rec_repro.dwell.boost)."""
    from gru4rec_repro.dwell import boost

    rng = np.random.default_rng(2)
    dwell = np.exp(np.log(57.0) + np.log(128.0 / 57.0) / 0.6745 * rng.standard_normal(len(df)))
    start = df.groupby("SessionId")["Time"].transform("min").to_numpy()
    step = np.r_[0.0, dwell[:-1]]
    first = np.r_[True, df["SessionId"].to_numpy()[1:] != df["SessionId"].to_numpy()[:-1]]
    step[first] = 0.0
    group = np.cumsum(first)
    offs = pd.Series(step).groupby(group).cumsum().to_numpy()
    return boost(df.assign(Time=start + offs), threshold)


# ---------------------------------------------------------------- PyTorch
def seed_group(train: pd.DataFrame, params: dict, seeds: int, device):
    """The models of one job's ``seeds`` seeds and how they are stepped.

    Returns (step, finish, how): ``step()`` trains one mini-batch of every seed and
    returns the events it fed per seed; ``finish()`` waits for the device; ``how``
    is "together" when the seeds are one batched model, "sequential" when they are
    separate models stepped one after another (the fallback, gain about 1; the
    throughput file then carries no seeds-together gain).
    Point this at gru4rec_torch's seeds-together API (implementations/GRU4REC_API.md).
    """
    import torch

    from implementations.gru4rec_torch.data import session_parallel
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.steps import step_runner

    p = {**params, "n_epochs": 1, **QUICK_PARAMS}
    models, iters, runners, sums = [], [], [], []
    for s in range(seeds):
        model, data = build(train, p, 1 + s, device)
        loss = torch.zeros((), device=model.device)
        models.append((model, data))
        sums.append(loss)
        runners.append(step_runner(model, loss))
        iters.append(None)
    min_lanes = 2 if models[0][0].params["n_sample"] == 0 else 1
    if seeds > 1:
        together = attempt_together(models, min_lanes)
        if together is not None:
            return together

    def step() -> int:
        n = 0
        for i, (model, data) in enumerate(models):
            if iters[i] is None:
                iters[i] = session_parallel(data, model.params["batch_size"], min_lanes=min_lanes)
            try:
                st = next(iters[i])
            except StopIteration:  # a new epoch: a new iterator (and graph capture), as training does
                runners[i].finish()
                model.H = model.zero_state(min(model.params["batch_size"], data.n_sessions))
                runners[i] = step_runner(model, sums[i])
                iters[i] = session_parallel(data, model.params["batch_size"], min_lanes=min_lanes)
                st = next(iters[i])
            runners[i](st, model.next_negatives())
            n = len(st.in_idx)
        return n

    def finish() -> None:
        float(sum(float(s) for s in sums))
        if models[0][0].device.type == "cuda":
            torch.cuda.synchronize()

    return step, finish, "sequential", [m for m, _ in models]


def attempt_together(models, min_lanes):
    """The seeds as one batched model (gru4rec_torch.seeds.SeedsTogether, replayed through
    steps.step_runner), or None (printed why) when that is not available here."""
    import torch

    from implementations.gru4rec_torch.data import session_parallel
    from implementations.gru4rec_torch.steps import step_runner

    try:
        from implementations.gru4rec_torch.seeds import SeedsTogether, seeds_together_enabled

        if not seeds_together_enabled():
            say("    seeds together switched off (GRU4REC_TORCH_SEEDS_TOGETHER); seeds one after another")
            return None
        group = SeedsTogether([m for m, _ in models])
        data, dev = models[0][1], models[0][0].device
        batch = models[0][0].params["batch_size"]
        loss = torch.zeros(len(models), device=dev)  # one loss sum per seed
        state = {"run": step_runner(group, loss), "it": session_parallel(data, batch, min_lanes=min_lanes)}

        def step() -> int:
            try:
                st = next(state["it"])
            except StopIteration:  # a new epoch, as training does
                state["run"].finish()
                group.H = group.zero_state(min(batch, data.n_sessions))
                state["run"] = step_runner(group, loss)
                state["it"] = session_parallel(data, batch, min_lanes=min_lanes)
                st = next(state["it"])
            state["run"](st, group.next_negatives())
            return len(st.in_idx)

        def finish() -> None:
            float(loss.sum())
            if dev.type == "cuda":
                torch.cuda.synchronize()

        step()
        finish()
        return step, finish, "together", [group]
    except Exception as err:  # not there (yet) or not for this setting: the fallback
        say(f"    seeds together not available ({type(err).__name__}: {err}); seeds one after another")
        return None


def timed_window(step, finish, warmup: int, window_s: float, chunk: int = 50) -> dict:
    """Steps after ``warmup`` (capture included there) for about ``window_s`` seconds."""
    for _ in range(warmup):
        step()
    finish()
    t0 = time.perf_counter()
    events = steps = 0
    while True:
        for _ in range(chunk):
            events += step()
        steps += chunk
        finish()
        if time.perf_counter() - t0 >= window_s:
            break
    seconds = time.perf_counter() - t0
    return {"events_per_s": events / seconds, "steps": steps, "seconds": seconds}


def torch_speed(train, params, seeds, device, args) -> dict:
    step, finish, how, models = seed_group(train, params, seeds, device)
    r = timed_window(step, finish, args.warmup, args.window_s)
    r.update(how=how, seeds=seeds)
    del models
    return r


def torch_eval(train, test, params, device) -> dict:
    from implementations.gru4rec_torch.runner import build

    model, _ = build(train, {**params, "n_epochs": 1}, 1, device)
    model.evaluate(test.head(2000))  # warm-up
    t0 = time.perf_counter()
    ranks = model.evaluate(test)
    seconds = time.perf_counter() - t0
    return {"events_per_s": len(ranks) / seconds, "events": len(ranks), "seconds": seconds}


def torch_placement(model) -> list[str]:
    """Where every tensor of a torch model lives; the misplaced ones."""
    devices = {name: str(t.device) for name, t in model.net.named_parameters()}
    devices.update({f"optimizer.acc.{k}": str(v.device) for k, v in model.optimizer.acc.items()})
    devices.update({f"optimizer.velocity.{k}": str(v.device) for k, v in model.optimizer.velocity.items()})
    devices["hidden_state"] = str(model.H[0].device)
    if model.store is not None:
        devices["sample_store"] = str(model.next_negatives().device)
    wrong = [n for n, d in devices.items() if not d.startswith(model.device.type)]
    say(f"  placement (xe): {len(devices) - len(wrong)} of {len(devices)} tensors on {model.device.type}"
        + (f"; NOT: {', '.join(wrong)}" if wrong else ""))
    return wrong


def graph_check(data: dict, device, steps: int) -> list[str]:
    """steps.graph_against_eager per setting (the torch engineer's check, printed as it says)."""
    from implementations.gru4rec_torch.data import item_index, session_data
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.steps import graph_against_eager

    wrong = []
    train = data["plain"]
    for label in ("xe", "bprmax", "top1-2016", "top1-2016-1000"):
        params = {**next(c[2] for c in TORCH_CASES if c[1] == label), "n_epochs": 1}
        sd = session_data(train, item_index(train), time_sort=params.get("time_sort", True))
        r = graph_against_eager(lambda: build(train, params, 3, device)[0], sd, steps)
        if not r["captured"]:
            wrong.append(f"{label} graph capture ({r['failure']})")
        extra = {k: v for k, v in r.items() if k not in ("eager", "again", "graph", "spread", "diff", "same",
                                                         "captured", "failure", "finite")}
        say(f"  {label:>15}: loss sum eager {r['eager']:.6f}, again {r['again']:.6f}, graph {r['graph']:.6f}; "
            f"largest weight difference eager-again {r['spread']:.2e}, eager-graph {r['diff']:.2e}: "
            f"{'same' if r['same'] else 'DIFFERENT'}" + (f" {extra}" if extra else ""))
        if not r["same"]:
            wrong.append(f"{label} graph differs from eager")
    return wrong


# ---------------------------------------------------------------- jobs per GPU
def jobs_worker(spec: dict) -> None:
    """One of N processes: each setting of ``spec`` built, warmed up, then timed when the parent says go."""
    import torch

    args = argparse.Namespace(**spec["args"])
    torch.set_num_threads(1)
    data = make_data(args)
    sync = Path(spec["sync"])
    for label in spec["labels"]:
        case = next(c for c in TORCH_CASES if c[1] == label)
        try:
            step, finish, how, models = seed_group(data[case[3]], case[2], args.seeds, torch.device(args.device))
            for _ in range(args.warmup):
                step()
            finish()
            ok = True
        except Exception as err:
            print(json.dumps({"label": label, "error": f"{type(err).__name__}: {err}"}), flush=True)
            ok = False
        (sync / f"ready-{label}-{spec['index']}").touch()
        while not (sync / f"go-{label}").exists():
            time.sleep(0.01)
        if not ok:
            continue
        t0 = time.perf_counter()
        events = 0
        while time.perf_counter() - t0 < args.window_s:
            for _ in range(50):
                events += step()
            finish()
        seconds = time.perf_counter() - t0
        print(json.dumps({"label": label, "events_per_s": events / seconds, "how": how}), flush=True)
        del models, step, finish
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


def jobs_per_gpu(n: int, labels: list[str], args) -> dict:
    """Sum of events/s of ``n`` processes on the one device, per setting label."""
    with tempfile.TemporaryDirectory() as sync:
        spec = {"args": vars(args), "labels": labels, "sync": sync, "quick_params": QUICK_PARAMS}
        procs = [subprocess.Popen([sys.executable, __file__, "--jobs-worker", json.dumps({**spec, "index": i})],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
        deadline = time.perf_counter() + args.worker_timeout_s
        for label in labels:
            while len(list(Path(sync).glob(f"ready-{label}-*"))) < n:
                if time.perf_counter() > deadline or any(p.poll() not in (None, 0) for p in procs):
                    for p in procs:
                        p.kill()
                    errs = " | ".join(p.communicate()[1][-600:] for p in procs)
                    raise RuntimeError(f"workers did not get ready for {label}: {errs}")
                time.sleep(0.02)
            (Path(sync) / f"go-{label}").touch()
        outs = [p.communicate(timeout=max(5.0, deadline - time.perf_counter())) for p in procs]
    total: dict = {}
    for out, err in outs:
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                if "error" in r:
                    say(f"    worker failed on {r['label']}: {r['error']}")
                    total[r["label"]] = None
                elif total.get(r["label"], 0) is not None:
                    total[r["label"]] = total.get(r["label"], 0.0) + r["events_per_s"]
    return {k: v for k, v in total.items() if v is not None}


# ---------------------------------------------------------------- Keras
def keras_worker(spec: dict) -> None:
    """In a process of its own with KERAS_BACKEND set: events/s of the Keras GRU4Rec per setting."""
    import keras

    from gru4rec_repro import gru4rec_params
    from implementations.gru4rec_keras.data import SessionData, item_index, session_parallel
    from implementations.gru4rec_keras.model import GRU4Rec
    from implementations.gru4rec_keras.runner import item_support
    from implementations.gru4rec_keras.sampling import SampleStore

    args = argparse.Namespace(**spec["args"])
    print(json.dumps({"info": f"keras {keras.__version__}, backend {keras.backend.backend()}"}), flush=True)
    train = synthetic_sessions(args.items, args.sessions, seed=0)
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    data = SessionData.from_frame(train, item_ids)
    backend_key = "backend" in set(gru4rec_params.known_keys())
    seeds = int(spec.get("seeds", 1))

    def timed(stepper, negatives, min_lanes: int, batch: int) -> tuple[float, float, int]:
        """(events/s per seed, seconds, steps) of ``stepper`` over a window after ``args.warmup`` steps."""
        it = session_parallel(data, batch, min_lanes=min_lanes)
        events = 0
        last = None
        t0 = None
        for i, st in enumerate(it):
            if i == args.warmup:
                float(np.sum(keras.ops.convert_to_numpy(last)))
                t0, events = time.perf_counter(), 0
            if st.keep is not None:
                stepper.keep_lanes(st.keep)
            if st.reset is not None:
                stepper.reset_lanes(st.reset)
            last = stepper.train_step_tensor(st.in_idx, st.out_idx, negatives())
            events += len(st.in_idx)
            if t0 is not None and i % 50 == 0 and time.perf_counter() - t0 >= args.window_s:
                break
        float(np.sum(keras.ops.convert_to_numpy(last)))
        seconds = time.perf_counter() - t0
        return events / seconds, seconds, i

    for setting, label, params in KERAS_CASES:
        try:
            p0 = {**params, "n_epochs": 1, **spec.get("quick_params", {}), "jit_compile": bool(spec.get("jit")),
                  **({"backend": keras.backend.backend()} if backend_key else {})}
            model = GRU4Rec(len(item_ids), p0, 1, support=support)
            p = model.p
            min_lanes = 2 if p["n_sample"] == 0 else 1
            store = SampleStore(support, p["n_sample"], p["sample_alpha"], p["sample_store_size"],
                                getattr(model, "sample_seed", 1)) if p["n_sample"] else None
            no_neg = np.zeros(0, np.int32)
            one, seconds, _ = timed(model, store.next if store else (lambda: no_neg), min_lanes, p["batch_size"])
            row = {"setting": setting, "label": label, "events_per_s": one, "seconds": seconds,
                   "how": "train_step_tensor"}
            del model, store
            if seeds > 1:  # the seeds-together gain: S seeds stepped together (seeds.SeedsTogether)
                from implementations.gru4rec_keras.seeds import SeedsTogether

                models = [GRU4Rec(len(item_ids), p0, 1 + s, support=support) for s in range(seeds)]
                group = SeedsTogether(models, batched=True)  # JAX: one vmapped step (also on its CPU)
                stores = [SampleStore(support, p["n_sample"], p["sample_alpha"], p["sample_store_size"],
                                      m.sample_seed) for m in models] if p["n_sample"] else None
                many, _, _ = timed(group, (lambda: np.stack([st.next() for st in stores])) if stores else
                                   (lambda: None), min_lanes, p["batch_size"])
                row.update(seeds=seeds, seed_events_per_s=many * seeds, seeds_together=many * seeds / one,
                           together_how="vmap" if group.batched else "sequential")
                del models, group, stores
            print(json.dumps(row), flush=True)
        except Exception as err:
            print(json.dumps({"setting": setting, "label": label, "error": f"{type(err).__name__}: {err}"}),
                  flush=True)
    if spec.get("jit"):  # the port compiles as its own JIT_COMPILE says, whatever the run's jit_compile
        return
    try:  # the tutorial's port: one epoch of fit (batch 512, softmax over every item), compilation included
        from implementations.gru4rec_keras.port import KerasPort

        port = KerasPort(len(item_ids), {"n_epochs": 1}, 1)
        port.item_ids = item_ids
        pdata = SessionData.from_frame(train, item_ids, where="train", time_sort=port.time_sort)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            port.fit(pdata, tmp, threads=1, device="gpu" if args.device.startswith("cuda") else "cpu",
                     progress=False)
            seconds = time.perf_counter() - t0
        print(json.dumps({"setting": "port", "label": "port (1 epoch, compilation included)",
                          "events_per_s": len(train) / seconds, "seconds": seconds, "how": "fit"}), flush=True)
    except Exception as err:
        print(json.dumps({"setting": "port", "label": "port", "error": f"{type(err).__name__}: {err}"}), flush=True)


def keras_speeds(args, backend: str, jit: bool = False) -> list[dict]:
    """The Keras worker's rows on ``backend`` (``jit``: with ``jit_compile: true``)."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
        env["JAX_PLATFORMS"] = "cpu"
    # the seeds-together gain on JAX only (one vmapped step there; the other backends step the
    # seeds one after another, a gain of about 1 not worth the device time)
    spec = {"args": vars(args), "quick_params": QUICK_PARAMS, "jit": jit,
            "seeds": args.seeds if backend == "jax" else 1}
    proc = subprocess.run([sys.executable, __file__, "--keras-worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=args.worker_timeout_s)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        raise RuntimeError(f"the Keras worker exited with {proc.returncode}: {proc.stderr[-1500:]}")
    return rows


# ---------------------------------------------------------------- baselines (CPU)
def baselines(data: dict) -> dict:
    from implementations.baselines.bprmf import BPRMF
    from implementations.baselines.common import PredictionEvents, rank_events
    from implementations.baselines.iknn import ItemKNN
    from implementations.baselines.pop import Pop
    from implementations.baselines.spop import SPop

    train, test = data["plain"], data["test"]
    out = {}
    for name, model in (("pop", Pop()), ("spop", SPop()), ("iknn", ItemKNN()), ("bprmf", BPRMF(n_epochs=1))):
        t0 = time.perf_counter()
        model.fit(train)
        fit = time.perf_counter() - t0
        events = PredictionEvents.from_test(test, model.item_ids)
        t0 = time.perf_counter()
        rank_events(events, lambda rows: model.score_block(events, rows), progress=False)
        rank = time.perf_counter() - t0
        out[name] = {"fit_events_per_s": len(train) / fit, "eval_events_per_s": len(events) / rank,
                     "fit_s": fit, "rank_s": rank, "rank_events": len(events)}
        say(f"  {name:>6}: fit {len(train):,} events in {fit:.2f} s ({len(train) / fit:,.0f} events/s), "
            f"ranked {len(events):,} test events in {rank:.2f} s ({len(events) / rank:,.0f} events/s)")
    return out


# ---------------------------------------------------------------- the run
def git_commit() -> str:
    """HEAD (and whether tracked files differ from it); ``GPU_CHECK_COMMIT`` wins: a
    device machine gets a copy of the working tree whose .git need not be current."""
    if os.environ.get("GPU_CHECK_COMMIT"):
        return os.environ["GPU_CHECK_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out + ("+uncommitted" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(args) -> int:
    import torch

    budget = Budget(args.budget_s)
    device = torch.device(args.device)
    dev = "gpu" if device.type == "cuda" else "cpu"
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    torch.set_num_threads(1)
    args.commit = git_commit()
    say(f"gpu_check: torch {torch.__version__}, device {device} ({gpu_name}), python {platform.python_version()}, "
        f"commit {args.commit}, budget {args.budget_s:.0f} s")
    say(f"command: {args.command}")
    t = time.perf_counter()
    data = make_data(args)
    say(f"data ({time.perf_counter() - t:.1f} s): {shape_report(data['plain'])}")
    say(f"  dwell-boosted (threshold 75 s, log-normal dwell, median 57 s): {len(data['dwell']):,} events "
        f"({len(data['dwell']) / len(data['plain']):.2f}x)")
    figures: dict = {}
    wrong: list = []
    speeds: dict = {}   # label -> {1: events/s, S: seed-events/s, how}
    S = args.seeds

    torch_on = "torch" in args.frameworks
    cases = [c for c in TORCH_CASES if not args.quick or c[1] in QUICK_CASES] if torch_on else []
    if torch_on:
        say(f"\n[1] PyTorch GRU4Rec training, events/s per seed alone and {S} seeds together "
        f"({args.window_s:g} s windows after {args.warmup} warm-up steps; CUDA graph where a GPU is):")
    placed = torch_on and attempt("placement", lambda: torch_placement(seed_group(data["plain"], SETTINGS["xe"], 1, device)[3][0]))
    wrong += placed or []
    for setting, label, params, which in cases:
        if not budget.fits(4 * args.window_s + 10, f"torch {label}"):
            continue
        one = attempt(f"torch {label}", torch_speed, data[which], params, 1, device, args)
        if one is None:
            wrong.append(f"torch {label}")
            continue
        many = attempt(f"torch {label} x{S}", torch_speed, data[which], params, S, device, args) \
            if S > 1 and budget.fits(2 * args.window_s + 10, f"torch {label} x{S}") else None
        speeds[label] = {"one": one["events_per_s"], "many": many and many["events_per_s"] * S,
                         "how": many and many["how"]}
        gain = speeds[label]["many"] / one["events_per_s"] if many else None
        say(f"  {label:>18} ({setting}): {one['events_per_s']:>10,.0f} events/s alone"
            + (f"; {S} seeds {many['how']}: {many['events_per_s'] * S:>10,.0f} seed-events/s, gain x{gain:.2f}"
               if many else ""))
        key = f"gru4rec_torch/{setting}/{dev}"
        prev = figures.get(key)
        if prev is None or one["events_per_s"] < prev["events_per_s"]:
            figures[key] = {"events_per_s": round(one["events_per_s"], 1),
                            "note": f"{label}: batch {params['batch_size']}, {params.get('n_sample', 0)} samples, "
                                    f"{params.get('layers', [100])[0]} units, {args.items:,} items, steady state",
                            **({"seeds_together": {S: round(gain, 3)}} if gain and many["how"] == "together" else {})}
    if torch_on:
        say("\n[2] PyTorch GRU4Rec ranking the test set (every item scored):")
    for label in ("top1-2016", "top1-2016-1000") if torch_on else ():
        if not budget.fits(15, f"eval {label}"):
            continue
        params = next(c[2] for c in TORCH_CASES if c[1] == label)
        r = attempt(f"eval {label}", torch_eval, data["plain"], data["test"], params, device)
        if r:
            say(f"  {label:>18}: {r['events']:,} test events in {r['seconds']:.2f} s: {r['events_per_s']:,.0f} events/s")
            key = f"gru4rec_torch/eval/{dev}"
            if key not in figures or r["events_per_s"] < figures[key]["events_per_s"]:
                figures[key] = {"events_per_s": round(r["events_per_s"], 1),
                                "note": f"{label}, {r['events']:,} test events, {args.items:,} items"}
    if device.type == "cuda" and torch_on:
        say(f"\n[3] CUDA graph against eager steps ({args.graph_steps} mini-batches from one seed):")
        if budget.fits(40, "graph check"):
            r = attempt("graph check", graph_check, data, device, args.graph_steps)
            wrong += r if r is not None else ["graph check (failed)"]
    if torch_on:
        say(f"\n[4] jobs per GPU: N processes at once on the device, {S} seeds each, against one:")
    for n in args.jobs if torch_on else ():
        need = 15 + len(JOBS_CASES) * (args.window_s + 8)
        if not budget.fits(need, f"{n} jobs at once"):
            continue
        labels = [lb for lb in JOBS_CASES if speeds.get(lb, {}).get("many" if S > 1 else "one")]
        labels = labels[:2] if args.quick else labels
        res = attempt(f"{n} jobs at once", jobs_per_gpu, n, labels, args)
        for label in labels if res else []:
            base = speeds[label]["many" if S > 1 else "one"]
            if res.get(label) is None:
                say(f"  {label:>18}: no result")
                continue
            g = res[label] / base
            say(f"  {label:>18}: {n} jobs {res[label]:>10,.0f} seed-events/s together, one job {base:>10,.0f}: "
                f"gain x{g:.2f}")
            setting = next(c[0] for c in TORCH_CASES if c[1] == label)
            fig = figures.get(f"gru4rec_torch/{setting}/{dev}")
            if fig is not None and fig["note"].startswith(label + ":"):
                fig.setdefault("jobs_per_gpu", {})[n] = round(g, 3)
    if "keras" in args.frameworks:
        from gru4rec_repro.plan import implementation_label

        for backend, jit in [(b, j) for b in args.keras_backend for j in (False, True)
                             if not j or b in args.keras_jit]:
            together = backend == "jax" and S > 1
            what = f"{backend}{', jit_compile' if jit else ''}"
            say(f"\n[5] Keras GRU4Rec on {what} ({args.window_s:g} s windows, one seed"
                + (f"; {S} seeds together, one vmapped step):" if together else "):"))
            if not budget.fits(90 + (len(KERAS_CASES) * (args.window_s + 10) if together else 0)
                               + (60 * len(KERAS_CASES) if jit else 0), f"keras on {what}"):
                continue
            rows = attempt(f"keras on {what}", keras_speeds, args, backend, jit) or []
            for r in rows:
                if "info" in r:
                    say(f"  {r['info']}")
                elif "error" in r:
                    say(f"  FAILED keras {r['label']}: {r['error']}")
                else:
                    gain = r.get("seeds_together")
                    say(f"  {r['label']:>18} ({r['setting']}): {r['events_per_s']:>10,.0f} events/s ({r['how']})"
                        + (f"; {r['seeds']} seeds {r['together_how']}: {r['seed_events_per_s']:>10,.0f} "
                           f"seed-events/s, gain x{gain:.2f}" if gain else ""))
                    label = implementation_label("gru4rec_keras", {"backend": backend, "jit_compile": jit})
                    figures[f"{label}/{r['setting']}/{dev}"] = {
                        "events_per_s": round(r["events_per_s"], 1),
                        "note": f"{r['label']}, backend {what}, {args.items:,} items, steady state",
                        **({"seeds_together": {r["seeds"]: round(gain, 3)}}
                           if gain and r.get("together_how") == "vmap" else {})}
    if "baselines" in args.frameworks:
        say("\n[6] baselines on this machine's CPU, one thread (fit over the training events, then ranking):")
        if budget.fits(40, "baselines"):
            r = attempt("baselines", baselines, data) or {}
            for name, v in r.items():
                figures[f"{name}/{'epoch' if name == 'bprmf' else 'fit'}/cpu"] = {
                    "events_per_s": round(v["fit_events_per_s"], 1),
                    "note": f"{len(data['plain']):,} events, {args.items:,} items, one thread"}
                figures[f"{name}/eval/cpu"] = {"events_per_s": round(v["eval_events_per_s"], 1),
                                               "note": f"{v['rank_events']:,} test events, {args.items:,} items"}
    if args.authors:
        say(f"\n[7] side by side with the authors' code on {args.device} (bench_vs_authors.compare):")
        if budget.fits(60 * len(args.side_settings), "side by side"):
            from bench_vs_authors import compare

            if attempt("side by side", compare, data["plain"], args.side_settings, ["authors", "torch"], args) is None:
                wrong.append("side by side")
    write_throughput(args, figures, gpu_name)
    say(f"\ntotal {budget.seconds - budget.left():.0f} s of the {args.budget_s:.0f} s budget")
    if wrong:
        say("FAIL: " + ", ".join(wrong))
        return 1
    return 0


def write_throughput(args, figures: dict, gpu_name: str) -> None:
    out = Path(args.out)
    log = f"benchmarks/logs/{args.name}.log"
    doc = {"log": log, "command": args.command, "commit": args.commit, "gpu": gpu_name,
           "date": date.today().isoformat(),
           "data": f"rsc15_like.synthetic_sessions({args.items}, {args.sessions}), seed 0",
           "figures": figures}
    path = out / f"{args.name}-throughput.yaml"
    try:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False)
    except ImportError:  # JSON is YAML too
        text = json.dumps(doc, indent=1)
    path.write_text("# benchmarks/gpu_check.py's measurements; read by `python -m gru4rec_repro plan` "
                    "(gru4rec_repro/plan.py, read_throughput)\n" + text + "\n")
    say(f"\nthroughput file {path} (log {out / (args.name + '.log')}; commit both as {log} and "
        f"benchmarks/logs/{path.name}):")
    for key, fig in figures.items():
        gains = "".join(f", {k} {v}" for k, v in fig.items() if k in ("seeds_together", "jobs_per_gpu"))
        say(f"  {key:<34} {fig['events_per_s']:>12,.0f} events/s{gains}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="small data and short windows (a smoke test)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds for the whole run (default 420)")
    ap.add_argument("--out", default=".", help="folder of the log and the throughput file")
    ap.add_argument("--name", default=None, help="file stem (default <date>-<device>-gpu_check)")
    ap.add_argument("--items", type=int, default=37_000)
    ap.add_argument("--sessions", type=int, default=RSC15_SESSIONS)
    ap.add_argument("--test-sessions", type=int, default=5_000)
    ap.add_argument("--seeds", type=int, default=5, help="S of the seeds-together gain (the study's seeds)")
    ap.add_argument("--jobs", type=int, nargs="*", default=[2, 4], help="N of the jobs-per-GPU gain")
    ap.add_argument("--window-s", type=float, default=3.0, help="seconds of each timed window")
    ap.add_argument("--warmup", type=int, default=100, help="mini-batches before each window")
    ap.add_argument("--graph-steps", type=int, default=300)
    ap.add_argument("--frameworks", nargs="+", default=["torch", "keras", "baselines"],
                    choices=["torch", "keras", "baselines"])
    ap.add_argument("--keras-backend", nargs="+", default=["jax", "torch"], choices=["jax", "tensorflow", "torch"],
                    help="the Keras backends to time, each in a process of its own (the GPU machine has no "
                         "TensorFlow)")
    ap.add_argument("--keras-jit", nargs="*", default=None, choices=["tensorflow", "torch"],
                    help="backends of --keras-backend also timed with jit_compile: true (torch.compile; XLA "
                         "on TensorFlow); default torch, none with --quick")
    ap.add_argument("--worker-timeout-s", type=float, default=180.0)
    ap.add_argument("--authors", help="checkout of hidasib/GRU4Rec_PyTorch_Official: also run it side by side")
    ap.add_argument("--side-settings", nargs="+", default=["xe", "bprmax"], help="settings of the side by side")
    ap.add_argument("--repeats", type=int, default=1, help="side-by-side runs per program and setting")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of each side-by-side program")
    ap.add_argument("--jobs-worker", help=argparse.SUPPRESS)
    ap.add_argument("--keras-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.jobs_worker:
        spec = json.loads(args.jobs_worker)
        QUICK_PARAMS.update(spec.get("quick_params", {}))
        jobs_worker(spec)
        return 0
    if args.keras_worker:
        keras_worker(json.loads(args.keras_worker))
        return 0
    args.command = "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.items, args.sessions, args.test_sessions = min(args.items, 2000), min(args.sessions, 3000), 200
        args.window_s, args.warmup, args.graph_steps = min(args.window_s, 0.3), min(args.warmup, 5), 20
        args.seeds, args.jobs = min(args.seeds, 2), args.jobs[:1]
        QUICK_PARAMS["sample_store_size"] = 20_000
    if args.keras_jit is None:  # torch.compile's compile takes minutes on a CPU: not in the smoke test
        args.keras_jit = [] if args.quick else ["torch"]
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"No CUDA device visible to torch {torch.__version__}. Run on a GPU machine, "
              "or pass --device cpu --quick to exercise the script.")
        return 2
    args.name = args.name or f"{date.today().isoformat()}-{'gpu' if args.device.startswith('cuda') else 'cpu'}-gpu_check"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.stdout = Tee(out / f"{args.name}.log")
    try:
        return run(args)
    finally:
        sys.stdout.flush()
        sys.stdout = sys.stdout.stdout


if __name__ == "__main__":
    raise SystemExit(main())
