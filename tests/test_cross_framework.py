"""The PyTorch and the Keras GRU4Rec compute the same thing.

1. Step by step: both load the same initial weights (one neutral weights.npz
   written from a numpy init) and run on the same hand-made mini-batches (lane
   resets and a batch shrink included) with the same extra negatives and, where
   a setting has dropout, the same dropout masks, injected through each model's
   ``dropout_mask_fn`` hook (GRU4REC_API.md): embedding mode, constrained mode
   and one-hot mode under both ``onehot_dropout`` rules, where the sites each
   framework asks masks for (and so which probability drops out what) are
   checked against the rule by hand. Every step's loss and the weights after
   the last step must agree within float32 tolerance; the same trained weights,
   evaluated by both, must give the same rank record.
2. Each framework's own data path: its own session-parallel iterator gives the
   same lanes, resets and shrinking over hundreds of random session layouts;
   its own sample store draws from the same distribution (chi-square tests
   with a stated power, see :func:`test_sample_stores_draw_the_same_distribution`);
   and a short training run where each framework uses its own iterator and
   its own store gives the same losses and weights.

The Keras GRU4Rec runs on this process's Keras backend (``KERAS_BACKEND``,
default tensorflow); :func:`test_keras_backend` runs the step-by-step tests
(part 1 and the own-data-path training run) again in a fresh process for each
other backend, so the PyTorch GRU4Rec is compared with Keras on TensorFlow,
JAX and PyTorch.

Only torch and keras themselves (and a backend's package, for its run) may be
missing (the test is skipped); an import error inside the project fails the test.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from implementations.gru4rec_keras import BACKENDS  # noqa: E402
from implementations.gru4rec_keras import data as keras_data  # noqa: E402
from implementations.gru4rec_keras import model as keras_model  # noqa: E402
from implementations.gru4rec_keras import sampling as keras_sampling  # noqa: E402
from implementations.gru4rec_torch import data as torch_data  # noqa: E402
from implementations.gru4rec_torch import model as torch_model  # noqa: E402
from implementations.gru4rec_torch import sampling as torch_sampling  # noqa: E402
from other_backends import run_file_on_backend  # noqa: E402

N_ITEMS, B, N_SAMPLE, STEPS = 30, 4, 8, 20
ITEM_IDS = np.arange(100, 100 + N_ITEMS, dtype=np.int64)
SUPPORT = np.arange(1, N_ITEMS + 1, dtype=np.float64) * 3

CONFIGS = {
    "xe-logq-constrained": dict(loss="cross-entropy", logq=1.0, sample_alpha=0.5, momentum=0.2),
    "xe-embedding": dict(loss="cross-entropy", constrained_embedding=False, embedding=6, momentum=0.1),
    "bprmax-elu-onehot": dict(loss="bpr-max", final_act="elu", elu_param=0.5, constrained_embedding=False,
                              embedding=0, momentum=0.3, bpreg=1.0, sample_alpha=0.0),
    "bprmax-constrained": dict(loss="bpr-max", momentum=0.1, bpreg=0.5),
    "top1max-2layers": dict(loss="top1-max", layers=[8, 5], constrained_embedding=False, embedding=0),
    "bpr-tanh-onehot": dict(loss="bpr", final_act="tanh", constrained_embedding=False, embedding=0,
                            n_sample=0),
    "top1-tanh-onehot": dict(loss="top1", final_act="tanh", constrained_embedding=False, embedding=0,
                             n_sample=0),
    # dropout on: masks injected through the hook
    "xe-embedding-dropout": dict(loss="cross-entropy", constrained_embedding=False, embedding=6, layers=[8, 5],
                                 dropout_p_embed=0.25, dropout_p_hidden=0.4, momentum=0.1),
    "bprmax-constrained-dropout": dict(loss="bpr-max", dropout_p_embed=0.2, dropout_p_hidden=0.3, momentum=0.1),
    "xe-onehot-dropout-embed": dict(loss="cross-entropy", constrained_embedding=False, embedding=0, layers=[8, 5],
                                    dropout_p_embed=0.3, dropout_p_hidden=0.2, onehot_dropout="embed"),
    "top1-onehot-dropout-hidden": dict(loss="top1", final_act="tanh", constrained_embedding=False, embedding=0,
                                       n_sample=0, dropout_p_embed=0.3, dropout_p_hidden=0.5,
                                       onehot_dropout="hidden"),
}

#: The dropout sites of each setting with dropout and their rates, by hand from SPEC.md section 4
#: (one-hot input has no embedding site; its first layer's output takes dropout_p_embed under the
#: official PyTorch rule, dropout_p_hidden under the Theano rule).
SITES = {
    "xe-embedding-dropout": {"embed": 0.25, "hidden0": 0.4, "hidden1": 0.4},
    "bprmax-constrained-dropout": {"embed": 0.2, "hidden0": 0.3},
    "xe-onehot-dropout-embed": {"hidden0": 0.3, "hidden1": 0.2},
    "top1-onehot-dropout-hidden": {"hidden0": 0.5},
}


class MaskSource:
    """The dropout hook: scaled masks from a seeded generator; records every call."""

    def __init__(self, rates: dict[str, float], seed: int = 5):
        self.rates, self.rng, self.calls = rates, np.random.default_rng(seed), []

    def __call__(self, site: str, shape: tuple) -> np.ndarray:
        self.calls.append((site, tuple(int(n) for n in shape)))
        p = self.rates[site]  # a site the setting should not have fails here
        return ((self.rng.random(shape) >= p) / (1.0 - p)).astype(np.float32)


def full_params(name: str) -> dict:
    return {"layers": [8], "batch_size": B, "n_sample": N_SAMPLE, "learning_rate": 0.05,
            "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0, **CONFIGS[name]}


def neutral_init(params: dict, seed: int = 7) -> dict[str, np.ndarray]:
    """Initial weights in the neutral layout, from numpy alone (biases non-zero on purpose)."""
    rng = np.random.default_rng(seed)
    u = lambda *shape: rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)  # noqa: E731
    layers, emb = params["layers"], params.get("embedding", 0)
    constrained = params.get("constrained_embedding", True)
    w = {"item_ids": ITEM_IDS,
         "meta": np.array(json.dumps({"layers": layers, "embedding": emb,
                                      "constrained_embedding": constrained, "format": 1})),
         "Wy": u(N_ITEMS, layers[-1]), "By": u(N_ITEMS) * 0.2}
    if not constrained and emb:
        w["E"] = u(N_ITEMS, emb)
    for layer, H in enumerate(layers):
        if layer == 0 and not constrained and not emb:
            w.update({"gru0.Wx": u(N_ITEMS, 3 * H), "gru0.Wrz": u(H, 2 * H), "gru0.Wh": u(H, H),
                      "gru0.b": u(3 * H) * 0.2})
            continue
        d_in = layers[-1] if (layer == 0 and constrained) else (emb if layer == 0 else layers[layer - 1])
        w.update({f"gru{layer}.W_ih": u(3 * H, d_in), f"gru{layer}.W_hh": u(3 * H, H),
                  f"gru{layer}.b_ih": u(3 * H) * 0.2, f"gru{layer}.b_hh": u(3 * H) * 0.2})
    return w


def schedule(n_sample: int, seed: int = 3) -> list[dict]:
    """STEPS hand-made mini-batches: resets on some lanes, the batch shrinks to 3 then 2 lanes."""
    rng = np.random.default_rng(seed)
    steps, lanes = [], B
    for t in range(STEPS):
        keep = None
        if t == 12:
            keep, lanes = np.array([0, 2, 3]), 3
        if t == 16:
            keep, lanes = np.array([1, 2]), 2
        reset = rng.random(lanes) < 0.3 if t > 0 else None
        steps.append({"keep": keep, "reset": reset, "in": rng.integers(0, N_ITEMS, lanes),
                      "out": rng.integers(0, N_ITEMS, lanes),
                      "neg": rng.integers(0, N_ITEMS, n_sample) if n_sample else None})
    return steps


def drive(model, steps) -> list[float]:
    out = []
    for s in steps:
        if s["keep"] is not None:
            model.keep_lanes(s["keep"])
        if s["reset"] is not None:
            model.reset_lanes(s["reset"])
        out.append(model.train_step(s["in"], s["out"], s["neg"]))
    return out


def load_npz(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k not in ("meta", "item_ids")}


def make_test() -> pd.DataFrame:
    """Test sessions over the 30 items (ItemIds 100..129), more sessions than eval lanes."""
    rng = np.random.default_rng(11)
    rows = []
    for s in range(9):
        for k in range(int(rng.integers(2, 7))):
            rows.append((s, 100 + int(rng.integers(0, N_ITEMS)), float(s * 100 + k)))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def trained(request, tmp_path_factory):
    name = request.param
    params = full_params(name)
    tmp = tmp_path_factory.mktemp(name)
    init = neutral_init(params)
    with open(tmp / "init.npz", "wb") as f:
        np.savez(f, **init)
    models, losses, hooks = {}, {}, {}
    for framework, module in (("torch", torch_model), ("keras", keras_model)):
        m = module.GRU4Rec(N_ITEMS, params, seed=1, support=SUPPORT)
        m.item_ids = ITEM_IDS
        m.load_weights(tmp / "init.npz")
        if name in SITES:
            m.dropout_mask_fn = hooks[framework] = MaskSource(SITES[name])
        losses[framework] = drive(m, schedule(params["n_sample"]))
        m.dropout_mask_fn = None
        m.save_weights(tmp / f"{framework}.npz")
        models[framework] = m
    return name, params, tmp, models, losses, hooks


def test_same_loss_every_step(trained):
    name, _, _, _, losses, _ = trained
    np.testing.assert_allclose(losses["keras"], losses["torch"], rtol=1e-4, atol=1e-5, err_msg=name)


def test_dropout_sites_follow_the_rule_in_both(trained):
    name, params, _, _, _, hooks = trained
    if name not in SITES:
        assert not hooks
        return
    lanes = [B] * 12 + [3] * 4 + [2] * 4  # the schedule's batch sizes
    width = {"embed": params.get("embedding") or params["layers"][-1]}
    width.update({f"hidden{i}": h for i, h in enumerate(params["layers"])})
    want = [(site, (n, width[site])) for n in lanes for site in SITES[name]]
    assert hooks["torch"].calls == want, name
    assert hooks["keras"].calls == want, name


def test_same_weights_after_training(trained):
    name, _, tmp, _, _, _ = trained
    wk, wt, w0 = load_npz(tmp / "keras.npz"), load_npz(tmp / "torch.npz"), load_npz(tmp / "init.npz")
    assert sorted(wk) == sorted(wt) == sorted(w0)
    for key in w0:
        np.testing.assert_allclose(wk[key], wt[key], rtol=1e-4, atol=2e-5, err_msg=f"{name}: {key}")
    assert any(not np.allclose(wk[k], w0[k]) for k in w0), "training changed nothing"


def test_same_rank_record(trained):
    name, params, tmp, models, _, _ = trained
    test = make_test()
    records = {}
    for framework, module in (("torch", torch_model), ("keras", keras_model)):
        m = module.GRU4Rec(N_ITEMS, {**params, "eval_batch_size": 4}, seed=2, support=SUPPORT)
        m.item_ids = ITEM_IDS
        m.load_weights(tmp / "keras.npz")  # the same trained weights for both
        records[framework] = m.evaluate(test).sort_values(["session_id", "position"]).reset_index(drop=True)
    k, t = records["keras"], records["torch"]
    assert len(k) == len(test) - test.SessionId.nunique()
    pd.testing.assert_frame_equal(k[["session_id", "position", "target"]], t[["session_id", "position", "target"]],
                                  check_dtype=False)
    np.testing.assert_array_equal(k["higher"], t["higher"], err_msg=name)
    np.testing.assert_array_equal(k["ties"], t["ties"], err_msg=name)


# ----- each framework's own data path ---------------------------------------------------------
def random_layout(rng: np.random.Generator) -> pd.DataFrame:
    """Sessions of random lengths (2..9, short ones most common), ids not in time order, tied start times."""
    n = int(rng.integers(1, 40))
    rows = []
    for sid in rng.permutation(np.arange(1, n + 1) * 7):
        start = float(rng.integers(0, 20)) * 10.0  # ties between sessions' first events on purpose
        for k in range(int(min(2 + rng.geometric(0.45) - 1, 9))):
            rows.append((int(sid), int(rng.integers(1, 13)), start + k))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def normalised_steps(steps, lanes_of):
    """(in, out, keep, reset) per step; ``None`` reset -> all false, ``None`` keep -> no shrink."""
    out = []
    for s in steps:
        n = len(s.in_idx)
        reset = np.zeros(n, bool) if s.reset is None else np.asarray(s.reset, bool)
        keep = None if s.keep is None else np.asarray(s.keep).tolist()
        out.append((np.asarray(s.in_idx).tolist(), np.asarray(s.out_idx).tolist(), keep, reset.tolist()))
        lanes_of.append(n)
    return out


def test_iterators_agree_on_random_layouts():
    rng = np.random.default_rng(2024)
    checked = shrinks = resets = 0
    for layout in range(300):
        df = random_layout(rng)
        item_ids = np.unique(df.ItemId.to_numpy())
        batch = int(rng.integers(1, 9))
        min_lanes = int(rng.integers(1, 3))
        time_sort = bool(rng.integers(0, 2))
        kd = keras_data.SessionData.from_frame(df, item_ids, time_sort=time_sort)
        td = torch_data.session_data(df, item_ids, time_sort=time_sort)
        assert kd.session_ids.tolist() == td.session_ids[td.order].tolist(), layout
        lanes_k, lanes_t = [], []
        ks = normalised_steps(keras_data.session_parallel(kd, batch, min_lanes=min_lanes), lanes_k)
        ts = normalised_steps(torch_data.session_parallel(td, batch, min_lanes=min_lanes), lanes_t)
        assert ks == ts, f"layout {layout}: batch {batch}, min_lanes {min_lanes}, time_sort {time_sort}"
        if min_lanes == 1:  # independent count: every event but each session's last is an input once
            assert sum(lanes_k) == len(df) - df.SessionId.nunique()
        checked += len(ks)
        shrinks += sum(k is not None for _, _, k, _ in ks)
        resets += sum(any(r) for _, _, _, r in ks)
    assert checked > 3000 and shrinks > 100 and resets > 500  # the layouts exercised all three


def test_sample_stores_draw_the_same_distribution():
    """Each store against the exact support^alpha distribution, and the two against each other.

    K = 40 items with supports 1..40 (shuffled), alpha 0.75, N = 200,000 draws
    from each store (rows of 1,000 from stores of 20,000: 10 refills). Tests at
    level 0.001: chi-square goodness of fit (39 df) of each store, and the 2 x K
    chi-square test of homogeneity between them. Power, computed below from the
    noncentral chi-square: against a store that samples with exponent 0.8
    instead of 0.75 the goodness-of-fit test has power > 0.999 (1 - 8e-9) and
    the homogeneity test power 0.994; a store that never draws the least
    popular item (probability 0.0027) is detected with power > 0.999 by
    either. Smaller errors are not in reach (exponent 0.77: power 0.26 and
    0.05), which the exact-equality check of
    :func:`test_own_iterator_and_store_train_the_same` covers instead.
    """
    from scipy import stats

    K, N, alpha, n_sample, store_size = 40, 200_000, 0.75, 1000, 20_000
    support = np.random.default_rng(0).permutation(np.arange(1, K + 1)).astype(np.float64)
    p0 = support ** alpha / (support ** alpha).sum()
    ks = keras_sampling.SampleStore(support, n_sample, alpha, store_size, seed=11)
    ts = torch_sampling.SampleStore(support, alpha, n_sample, store_size, np.random.default_rng(12))
    counts = {}
    for name, store in (("keras", ks), ("torch", ts)):
        draws = np.concatenate([np.asarray(store.next()) for _ in range(N // n_sample)])
        counts[name] = np.bincount(draws, minlength=K)
        assert counts[name].sum() == N and len(counts[name]) == K
        assert stats.chisquare(counts[name], N * p0).pvalue > 1e-3, name
    table = np.stack([counts["keras"], counts["torch"]])
    assert stats.chi2_contingency(table).pvalue > 1e-3

    # the stated power (so that a passing test means something)
    crit_gof, crit_hom = stats.chi2.ppf(0.999, K - 1), stats.chi2.ppf(0.999, K - 1)
    p1 = support ** 0.8 / (support ** 0.8).sum()
    lam_gof = N * ((p1 - p0) ** 2 / p0).sum()
    lam_hom = N / 2 * ((p1 - p0) ** 2 / ((p1 + p0) / 2)).sum()  # two samples of N each
    assert stats.ncx2.sf(crit_gof, K - 1, lam_gof) > 0.999
    assert stats.ncx2.sf(crit_hom, K - 1, lam_hom) > 0.99
    p_drop = np.where(support == 1, 0.0, p0)
    p_drop /= p_drop.sum()
    lam_drop = N * ((p_drop - p0) ** 2 / p0).sum()
    assert stats.ncx2.sf(crit_gof, K - 1, lam_drop) > 0.999
    lam_drop_hom = N / 2 * ((p_drop - p0) ** 2 / ((p_drop + p0) / 2)).sum()
    assert stats.ncx2.sf(crit_hom, K - 1, lam_drop_hom) > 0.999


def test_own_iterator_and_store_train_the_same(tmp_path):
    """A short epoch where each framework uses its OWN iterator and sample store (same store seed),
    dropout masks through the hook: same per-step losses and final weights."""
    name = "xe-embedding-dropout"
    params = {**full_params(name), "sample_store_size": 3 * N_SAMPLE}  # a refill every 3 steps
    rng = np.random.default_rng(9)
    rows = [(sid, 100 + int(rng.integers(0, N_ITEMS)), sid * 100.0 + k)
            for sid in range(25) for k in range(int(rng.integers(2, 7)))]
    df = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    with open(tmp_path / "init.npz", "wb") as f:
        np.savez(f, **neutral_init(params))
    out = {}
    for framework in ("torch", "keras"):
        if framework == "torch":
            m = torch_model.GRU4Rec(N_ITEMS, params, seed=1, support=SUPPORT)
            steps = torch_data.session_parallel(torch_data.session_data(df, ITEM_IDS), B)
            store = torch_sampling.SampleStore(SUPPORT, params.get("sample_alpha", 0.5), N_SAMPLE,
                                               params["sample_store_size"], np.random.default_rng(77))
        else:
            m = keras_model.GRU4Rec(N_ITEMS, params, seed=1, support=SUPPORT)
            steps = keras_data.session_parallel(keras_data.SessionData.from_frame(df, ITEM_IDS), B)
            store = keras_sampling.SampleStore(SUPPORT, N_SAMPLE, params.get("sample_alpha", 0.5),
                                               params["sample_store_size"], seed=77)
        m.item_ids = ITEM_IDS
        m.load_weights(tmp_path / "init.npz")
        m.dropout_mask_fn = MaskSource(SITES[name])
        losses, negatives = [], []
        for s in steps:
            if s.keep is not None:
                m.keep_lanes(s.keep)
            if s.reset is not None:
                m.reset_lanes(s.reset)
            neg = np.asarray(store.next())
            negatives.append(neg.tolist())
            losses.append(m.train_step(s.in_idx, s.out_idx, neg))
        m.save_weights(tmp_path / f"{framework}.npz")
        out[framework] = (losses, negatives, load_npz(tmp_path / f"{framework}.npz"))
    (lt, nt, wt), (lk, nk, wk) = out["torch"], out["keras"]
    assert len(lt) == len(lk) > 20
    assert nt == nk  # same seed, same distribution, same inversion: the same extra negatives
    np.testing.assert_allclose(lk, lt, rtol=1e-4, atol=1e-5)
    for key in wt:
        np.testing.assert_allclose(wk[key], wt[key], rtol=1e-4, atol=2e-5, err_msg=key)


# ----- the other Keras backends ---------------------------------------------------------------
#: set in the processes :func:`test_keras_backend` starts (they do not start more)
CHILD = "GRU4REC_KERAS_BACKEND_CHILD"
#: the tests that depend on the Keras backend (the iterator and store tests are numpy)
STEP_BY_STEP = ("test_same_loss_every_step", "test_dropout_sites_follow_the_rule_in_both",
                "test_same_weights_after_training", "test_same_rank_record",
                "test_own_iterator_and_store_train_the_same")


def test_this_process_runs_keras_on_its_backend():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_backend(backend):
    """The step-by-step comparison with PyTorch's GRU4Rec, in a fresh process with Keras on ``backend``."""
    run_file_on_backend(__file__, backend, CHILD,
                        " or ".join((*STEP_BY_STEP, "test_this_process_runs_keras_on_its_backend")),
                        n_passed=len(CONFIGS) * 4 + 2)
