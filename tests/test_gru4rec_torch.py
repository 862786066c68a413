"""GRU4Rec in PyTorch against SPEC.md section 4, on tiny hand-made data."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec_repro.contract import RANK_COLUMNS, rank_counts
from implementations.gru4rec_torch import cpu_kernels, losses
from implementations.gru4rec_torch.data import item_index, session_data, session_parallel
from implementations.gru4rec_torch.model import GRU4Rec
from implementations.gru4rec_torch.optim import SparseAdagradMomentum
from implementations.gru4rec_torch.sampling import SampleStore, invert_cdf, sampling_cdf
from implementations.gru4rec_torch.steps import WARMUP_STEPS, EagerSteps, GraphedSteps, step_runner
from implementations.gru4rec_torch.train import train

torch.set_num_threads(1)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- data
def five_sessions() -> pd.DataFrame:
    """Sessions whose ids are NOT in time order; event k of the whole split has item 100 + k.

    In order of first event: session 50 (3 events), 40 (2), 30 (4), 20 (2), 10 (3),
    so the item index is event-number order too: items 100..113 -> indices 0..13.
    """
    rows, k = [], 0
    for t0, (sid, length) in enumerate([(50, 3), (40, 2), (30, 4), (20, 2), (10, 3)]):
        for j in range(length):
            rows.append((sid, 100 + k, 1000.0 * t0 + j))
            k += 1
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def test_sessions_are_ordered_by_first_event_time():
    df = five_sessions()
    data = session_data(df, item_index(df))
    assert list(data.session_ids[data.order]) == [50, 40, 30, 20, 10]


def test_lanes_reset_exactly_where_a_new_session_starts_and_the_batch_shrinks_at_the_end():
    df = five_sessions()
    data = session_data(df, item_index(df))
    steps = list(session_parallel(data, batch_size=2))
    # Worked by hand: lane 0 holds sessions 50, 20, 10; lane 1 holds 40 then 30.
    expected = [  # (in, out, reset, keep)
        ([0, 3], [1, 4], None, None),
        ([1, 5], [2, 6], [False, True], None),   # session 30 takes lane 1
        ([9, 6], [10, 7], [True, False], None),  # session 20 takes lane 0
        ([11, 7], [12, 8], [True, False], None), # session 10 takes lane 0
        ([12], [13], None, [0]),                 # 30 is over, none left: lane 1 dropped
    ]
    assert len(steps) == len(expected)
    for step, (i, o, reset, keep) in zip(steps, expected):
        assert step.in_idx.tolist() == i and step.out_idx.tolist() == o
        assert (step.reset is None) == (reset is None)
        if reset is not None:
            assert step.reset.tolist() == reset
        assert (step.keep is None) == (keep is None)
        if keep is not None:
            assert step.keep.tolist() == keep
    # no tail session is dropped: every event but a session's last is a prediction
    assert sum(len(s.in_idx) for s in steps) == len(df) - 5


def test_without_extra_samples_the_epoch_ends_when_one_lane_is_left():
    df = five_sessions()
    data = session_data(df, item_index(df))
    steps = list(session_parallel(data, batch_size=2, min_lanes=2))
    assert len(steps) == 4 and all(len(s.in_idx) == 2 for s in steps)


def test_positions_and_sessions_of_each_lane():
    df = five_sessions()
    data = session_data(df, item_index(df))
    steps = list(session_parallel(data, batch_size=2, with_positions=True))
    assert data.session_ids[steps[2].session].tolist() == [20, 30]
    assert steps[2].position.tolist() == [0, 1]
    assert steps[4].position.tolist() == [1]


def test_items_unseen_in_training_are_dropped_and_short_sessions_with_them():
    df = pd.DataFrame({"SessionId": [1, 1, 2, 2, 2], "ItemId": [7, 99, 7, 8, 7], "Time": [0.0, 1, 2, 3, 4]})
    data = session_data(df, np.array([7, 8]))
    assert data.session_ids.tolist() == [2] and data.items.tolist() == [0, 1, 0]


# ------------------------------------------------------------------------- losses
R = np.array([[1.0, -0.5, 0.3, 2.0, -1.0],
              [0.2, 0.7, -0.4, 0.0, 1.5],
              [-1.2, 0.4, 0.9, 0.6, -0.3]])  # B = 3 lanes, 2 extra samples; targets on the diagonal


def np_softmax_negatives(R):
    e = np.exp(R)
    np.fill_diagonal(e, 0.0)
    return e / e.sum(1, keepdims=True)


def np_loss(name, R, bpreg=0.5):
    """The coded forms of SPEC.md section 4, row by row."""
    B, M = R.shape
    out = []
    for i in range(B):
        r_i, r = R[i, i], R[i]
        if name == "cross-entropy":
            out.append(-np.log(np.exp(r_i) / np.exp(r).sum() + 1e-24))
        elif name == "top1":
            out.append(np.mean(sigmoid(r - r_i) + sigmoid(r ** 2)) - sigmoid(r_i ** 2) / M)
        elif name == "bpr":
            out.append(np.sum(-np.log(sigmoid(r_i - r))))
        else:
            s = np_softmax_negatives(R)[i]
            if name == "top1-max":
                out.append(np.sum(s * (sigmoid(r - r_i) + sigmoid(r ** 2))))
            else:
                out.append(-np.log(np.sum(s * sigmoid(r_i - r)) + 1e-24) + bpreg * np.sum(s * r ** 2))
    return np.array(out)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_each_loss_equals_its_formula(name):
    got = losses.row_losses(name, torch.tensor(R), bpreg=0.5).numpy()
    np.testing.assert_allclose(got, np_loss(name, R), rtol=1e-10)


NP_ACT = {"linear": lambda x: x, "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0),
          "elu": lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))}


@pytest.mark.parametrize("name,act", [(n, a) for n in losses.LOSSES for a in ("linear", "elu", "tanh")])
def test_loss_gradients_equal_finite_differences_of_the_formula(name, act):
    """loss_and_grad (every loss in closed form) against central
    differences of the numpy formulas, through the final activation and logQ."""
    rng = np.random.default_rng(5)
    raw = rng.normal(size=(3, 6)) * 1.5
    shift = rng.normal(size=6) if name == "cross-entropy" else None

    def total(x):
        R = NP_ACT[act](x)
        return np_loss(name, R if shift is None else R - shift, bpreg=0.7).sum()

    num = np.zeros_like(raw)
    for ij in np.ndindex(raw.shape):
        e = np.zeros_like(raw)
        e[ij] = 1e-6
        num[ij] = (total(raw + e) - total(raw - e)) / 2e-6
    rows, dR = losses.loss_and_grad(name, torch.tensor(raw), act, 0.5, 0.7,
                                    None if shift is None else torch.tensor(shift), scale=0.25)
    np.testing.assert_allclose(rows.sum().item(), total(raw), rtol=1e-12)
    np.testing.assert_allclose(dR.numpy(), 0.25 * num, rtol=1e-6, atol=1e-8)


def test_negative_softmax_gives_the_target_weight_zero():
    s = losses.softmax_negatives(torch.tensor(R)).numpy()
    assert np.all(np.diag(s) == 0.0)
    np.testing.assert_allclose(s, np_softmax_negatives(R), rtol=1e-12)


def test_logq_subtracts_the_log_sampling_probability_before_the_softmax():
    shift = np.array([0.1, 0.4, 0.9, 1.3, 0.2])
    got = losses.cross_entropy(torch.tensor(R), torch.tensor(shift)).numpy()
    np.testing.assert_allclose(got, np_loss("cross-entropy", R - shift), rtol=1e-10)


@pytest.mark.parametrize("name,fn", [("linear", lambda x: x), ("tanh", np.tanh),
                                     ("relu", lambda x: np.maximum(x, 0)),
                                     ("elu", lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)))])
def test_final_activations(name, fn):
    got = losses.final_activation(torch.tensor(R), name, elu_param=0.5).numpy()
    np.testing.assert_allclose(got, fn(R), rtol=1e-12)


def test_the_cpu_elu_of_the_training_step_equals_torch_elu():
    """losses._elu (exp of the clamped scores, the training step's CPU ELU) is
    F.elu to float32 rounding, exactly the input above 0, on float32 scores."""
    x = torch.linspace(-30.0, 30.0, 20001, dtype=torch.float32)
    got, ref = losses._elu(x, 0.5), torch.nn.functional.elu(x, alpha=0.5)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0, atol=1e-7)
    assert torch.equal(got[x > 0], x[x > 0])


# ---------------------------------------------- one training step against numpy
def np_hidden(w, meta, in_idx, h):
    """The GRU of GRU4REC_API.md, in numpy, from the neutral weights (one layer)."""
    H = meta["layers"][0]
    if not meta["constrained_embedding"] and meta["embedding"] == 0:  # original form
        v = w["gru0.Wx"][in_idx] + w["gru0.b"]
        v_n, v_r, v_z = v[:, :H], v[:, H:2 * H], v[:, 2 * H:]
        rz = sigmoid(np.hstack([v_r, v_z]) + h @ w["gru0.Wrz"])
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh((r * h) @ w["gru0.Wh"] + v_n)
        return (1 - z) * h + z * n
    x = w["Wy"][in_idx] if meta["constrained_embedding"] else w["E"][in_idx]
    gi = x @ w["gru0.W_ih"].T + w["gru0.b_ih"]
    gh = h @ w["gru0.W_hh"].T + w["gru0.b_hh"]
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


SUPPORT = np.array([5.0, 1.0, 3.0, 8.0, 2.0, 4.0, 6.0])


@pytest.mark.parametrize("params", [
    dict(loss="cross-entropy", logq=1.0, sample_alpha=0.5),
    dict(loss="bpr-max", final_act="elu", elu_param=0.5, constrained_embedding=False, embedding=0, bpreg=0.7),
    dict(loss="top1", final_act="tanh", constrained_embedding=False, embedding=3),
    dict(loss="bpr", final_act="tanh", constrained_embedding=False, embedding=0),
    dict(loss="top1-max", final_act="relu"),
])
def test_train_step_loss_is_the_spec_loss_over_the_nominal_batch(params, tmp_path):
    p = dict(layers=[4], batch_size=3, n_sample=2, momentum=0.3, **params)
    model = GRU4Rec(7, p, seed=3, support=SUPPORT)
    model.train_step([0, 1, 2], [3, 4, 5], [6, 1])
    model.keep_lanes([0, 2])  # the batch shrinks to 2 lanes; the loss still divides by 3
    model.reset_lanes([False, True])
    model.save_weights(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as z:
        w = {k: z[k].astype(np.float64) for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    h0 = model.H[0].numpy().astype(np.float64)
    assert np.all(h0[1] == 0)
    in_idx, out_idx, neg = np.array([3, 5]), np.array([2, 0]), np.array([4, 4])
    h = np_hidden(w, meta, in_idx, h0)
    y = np.r_[out_idx, neg]
    R = h @ w["Wy"][y].T + w["By"][y]
    act = {"linear": lambda x: x, "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0),
           "elu": lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))}[model.params["final_act"]]
    R = act(R)
    if model.params["logq"]:
        R = R - np.r_[np.log(SUPPORT[out_idx]), 0.5 * np.log(SUPPORT[neg])]
    expected = np_loss(model.params["loss"], R, bpreg=model.params["bpreg"]).sum() / 3
    got = model.train_step(in_idx, out_idx, neg)
    assert got == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.H[0].numpy(), h, rtol=1e-5, atol=1e-6)  # no dropout: state = output


@pytest.mark.parametrize("one_hot", [False, True])
def test_gru_layer_backward_by_hand_equals_autograd(one_hot):
    """forward_train/backward of both layer forms (the training step's GRU,
    no autograd) against autograd through the layer's own forward."""
    from implementations.gru4rec_torch.model import GRULayer, OneHotGRULayer

    gen = torch.Generator().manual_seed(0)
    layer = (OneHotGRULayer(9, 5, gen) if one_hot else GRULayer(4, 5, gen)).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    x = torch.randn(3, 15 if one_hot else 4, generator=gen, dtype=torch.float64)
    h = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    d_out = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    out, ctx = layer.forward_train(x, h)
    d_x, grads = layer.backward(ctx, d_out)
    dense = [p for p in layer.parameters() if p.requires_grad]
    xl = x.clone().requires_grad_()
    ref_out = layer(xl, h)
    ref = torch.autograd.grad(ref_out, dense + [xl], d_out)
    np.testing.assert_allclose(out.numpy(), ref_out.detach().numpy(), rtol=1e-12)
    assert len(grads) == len(dense)
    for got, want in zip(grads + [d_x], ref):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-12)


def test_hidden_dropout_output_is_the_next_state():
    model = GRU4Rec(7, dict(layers=[50], batch_size=4, n_sample=0, dropout_p_hidden=0.5), seed=1)
    model.train_step([0, 1, 2, 3], [1, 2, 3, 4], None)
    zeros = (model.H[0] == 0).float().mean().item()
    assert 0.3 < zeros < 0.7


# -------------------------------------------------------------------- optimizer
def test_sparse_adagrad_momentum_matches_a_hand_computed_step():
    W0 = np.arange(8, dtype=np.float64).reshape(4, 2) / 10
    D0 = np.array([1.0, -1.0])
    params = {"W": torch.tensor(W0), "D": torch.tensor(D0)}
    opt = SparseAdagradMomentum(params, learning_rate=0.1, momentum=0.5, eps=1e-6)
    g1 = np.array([[1.0, 2.0], [0.5, -1.0]])
    opt.step_rows("W", torch.tensor([0, 2]), torch.tensor(g1))
    opt.step_dense("D", torch.tensor([0.2, 0.4]))
    # by hand: acc = g^2; v = -lr * g / sqrt(acc + eps); w += v
    v0 = -0.1 * g1 / np.sqrt(g1 ** 2 + 1e-6)
    W1 = W0.copy()
    W1[[0, 2]] += v0
    np.testing.assert_allclose(params["W"].numpy(), W1, rtol=1e-12)
    # second step touches row 2 only: row 0 keeps weights AND momentum
    g2 = np.array([[-1.0, 1.0]])
    opt.step_rows("W", torch.tensor([2]), torch.tensor(g2))
    acc = g1[1] ** 2 + g2[0] ** 2
    v = 0.5 * v0[1] - 0.1 * g2[0] / np.sqrt(acc + 1e-6)
    W2 = W1.copy()
    W2[2] += v
    np.testing.assert_allclose(params["W"].numpy(), W2, rtol=1e-12)
    np.testing.assert_allclose(opt.velocity["W"].numpy()[0], v0[0], rtol=1e-12)
    assert np.all(opt.acc["W"].numpy()[[1, 3]] == 0) and np.all(opt.velocity["W"].numpy()[[1, 3]] == 0)
    np.testing.assert_array_equal(params["W"].numpy()[[1, 3]], W0[[1, 3]])
    # the dense parameter took its step
    np.testing.assert_allclose(params["D"].numpy(),
                               D0 - 0.1 * np.array([0.2, 0.4]) / np.sqrt(np.array([0.04, 0.16]) + 1e-6))


def test_row_updates_by_entries_equal_the_update_of_the_distinct_rows():
    """step_entries (repeated rows, one marked entry per row carrying the summed
    gradient) gives what step_rows gives on the distinct rows, twice in a row
    (so the momentum and accumulator carry over); unmarked rows do not move."""
    rng = np.random.default_rng(0)
    W0 = rng.normal(size=(6, 3))
    a = {"W": torch.tensor(W0)}
    b = {"W": torch.tensor(W0)}
    opt_a = SparseAdagradMomentum(a, learning_rate=0.1, momentum=0.4)
    opt_b = SparseAdagradMomentum(b, learning_rate=0.1, momentum=0.4)
    for idx, mask, rows in (([4, 1, 4, 2], [True, True, False, True], [4, 1, 2]),
                            ([2, 2, 5, 0], [False, True, True, False], [2, 5])):
        g = rng.normal(size=(len(rows), 3))
        entries = np.zeros((len(idx), 3))
        entries[np.flatnonzero(mask)] = g[[rows.index(r) for r in np.array(idx)[mask]]]
        opt_a.step_entries("W", torch.tensor(idx), torch.tensor(entries), torch.tensor(mask))
        opt_b.step_rows("W", torch.tensor(rows), torch.tensor(g))
        np.testing.assert_allclose(a["W"].numpy(), b["W"].numpy(), rtol=1e-12)
        np.testing.assert_allclose(opt_a.velocity["W"].numpy(), opt_b.velocity["W"].numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt_a.acc["W"].numpy(), opt_b.acc["W"].numpy(), rtol=1e-12)
    assert np.array_equal(a["W"].numpy()[3], W0[3]) and not opt_a.acc["W"][3].any()  # row 3: never used


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="numba is not installed: the fused CPU kernel is not used")
@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_fused_cpu_row_update_equals_the_pytorch_index_operations(momentum):
    """The numba kernel and PyTorch's index operations make the same
    step_entries update, on float32 matrices and vectors with repeated rows,
    over several steps (accumulator and momentum carry over); rows that no
    marked entry names keep weights, accumulator and momentum bit for bit."""
    rng = np.random.default_rng(3)
    init = {"W": rng.normal(size=(50, 7)).astype(np.float32), "b": rng.normal(size=50).astype(np.float32)}
    fused = {k: torch.tensor(v) for k, v in init.items()}
    plain = {k: torch.tensor(v) for k, v in init.items()}
    opt_f = SparseAdagradMomentum(fused, learning_rate=0.2, momentum=momentum, cpu_kernel=True)
    opt_p = SparseAdagradMomentum(plain, learning_rate=0.2, momentum=momentum, cpu_kernel=False)
    touched = np.zeros(50, dtype=bool)
    for _ in range(4):
        idx = rng.integers(0, 40, size=30)  # rows 40-49 are never named
        _, first = np.unique(idx, return_index=True)
        mask = np.zeros(30, dtype=bool)
        mask[first] = True
        mask[rng.random(30) < 0.2] = False  # some rows have no gradient this step
        touched[idx[mask]] = True
        for name, shape in (("W", (30, 7)), ("b", (30,))):
            g = (rng.normal(size=shape) * mask.reshape((-1,) + (1,) * (len(shape) - 1))).astype(np.float32)
            for opt in (opt_f, opt_p):
                opt.step_entries(name, torch.tensor(idx), torch.tensor(g), torch.tensor(mask))
    for name in init:
        np.testing.assert_allclose(fused[name].numpy(), plain[name].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(opt_f.acc[name].numpy(), opt_p.acc[name].numpy(), rtol=1e-5, atol=1e-7)
        if momentum:
            np.testing.assert_allclose(opt_f.velocity[name].numpy(), opt_p.velocity[name].numpy(),
                                       rtol=1e-4, atol=1e-6)
        assert not np.array_equal(fused[name].numpy()[touched], init[name][touched])
        np.testing.assert_array_equal(fused[name].numpy()[~touched], init[name][~touched])
        assert not opt_f.acc[name].numpy()[~touched].any()
        if momentum:
            assert not opt_f.velocity[name].numpy()[~touched].any()


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="numba is not installed: the fused CPU kernel is not used")
@pytest.mark.parametrize("setting", [
    dict(loss="cross-entropy", constrained_embedding=True, n_sample=64, sample_alpha=0.5, logq=1.0, momentum=0.2),
    dict(loss="bpr-max", constrained_embedding=False, embedding=0, n_sample=64, elu_param=0.5, momentum=0.0),
])
def test_training_with_the_fused_cpu_kernel_equals_training_without_it(setting):
    """Ten training steps with the fused CPU row update and ten with PyTorch's
    index operations, same seed and batches: the same weights to float32 rounding."""
    params = {"layers": [16], "batch_size": 8, "dropout_p_hidden": 0.2, "learning_rate": 0.1, **setting}
    models = [GRU4Rec(30, params, seed=5, support=np.arange(1, 31)) for _ in range(2)]
    models[1].optimizer.cpu_kernel = False
    rng = np.random.default_rng(0)
    for _ in range(10):
        in_idx, out_idx = rng.integers(0, 30, 8), rng.integers(0, 30, 8)
        losses_ = [m.train_step(in_idx, out_idx, m.next_negatives()) for m in models]
        assert losses_[0] == pytest.approx(losses_[1], rel=1e-4)
    for a, b in zip(models[0].net.parameters(), models[1].net.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="numba is not installed: the fused CPU kernel is not used")
@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_fused_cpu_dense_update_equals_the_pytorch_operations(momentum):
    """step_dense_all with cpu_kernels.dense_update (float32 on the CPU) and
    with PyTorch's operations: the same weights, accumulators and momenta to
    float32 rounding over several steps."""
    rng = np.random.default_rng(2)
    init = {"A": rng.normal(size=(5, 3)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
    fused = {k: torch.tensor(v) for k, v in init.items()}
    plain = {k: torch.tensor(v) for k, v in init.items()}
    opts = [SparseAdagradMomentum(t, learning_rate=0.2, momentum=momentum, dense=("A", "b"), cpu_kernel=k)
            for t, k in ((fused, True), (plain, False))]
    for _ in range(4):
        g = [torch.tensor(rng.normal(size=v.shape).astype(np.float32)) for v in init.values()]
        for opt in opts:
            opt.step_dense_all([t.clone() for t in g])
    for name in init:
        assert not np.array_equal(fused[name].numpy(), init[name])
        np.testing.assert_allclose(fused[name].numpy(), plain[name].numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(opts[0].acc[name].numpy(), opts[1].acc[name].numpy(), rtol=1e-6)
        if momentum:
            np.testing.assert_allclose(opts[0].velocity[name].numpy(), opts[1].velocity[name].numpy(),
                                       rtol=1e-5, atol=1e-7)


def test_dense_update_of_all_parameters_at_once_equals_one_by_one():
    rng = np.random.default_rng(1)
    init = {"A": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    a = {k: torch.tensor(v) for k, v in init.items()}
    b = {k: torch.tensor(v) for k, v in init.items()}
    opt_a = SparseAdagradMomentum(a, learning_rate=0.2, momentum=0.3, dense=("A", "b"))
    opt_b = SparseAdagradMomentum(b, learning_rate=0.2, momentum=0.3)
    for _ in range(3):
        g = {k: torch.tensor(rng.normal(size=v.shape)) for k, v in init.items()}
        opt_a.step_dense_all([g["A"], g["b"]])
        for k in g:
            opt_b.step_dense(k, g[k])
    for k in init:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-12)
        np.testing.assert_allclose(opt_a.velocity[k].numpy(), opt_b.velocity[k].numpy(), rtol=1e-12)


def test_a_training_step_leaves_item_rows_outside_the_mini_batch_untouched():
    model = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=2, momentum=0.5), seed=0, support=np.ones(10))
    model.train_step([0, 1], [2, 3], [4, 5])
    before = {k: v.clone() for k, v in model.item_params.items()}
    v_before = model.optimizer.velocity["Wy"].clone()
    model.train_step([2, 3], [6, 7], [6, 8])  # uses Wy rows 2, 3, 6, 7, 8 (By: 6, 7, 8)
    for row in (0, 1, 4, 5, 9):
        assert torch.equal(model.net.Wy[row], before["Wy"][row])
        assert torch.equal(model.optimizer.velocity["Wy"][row], v_before[row])
    for row in (0, 1, 2, 3, 4, 5, 9):  # input-only rows 2, 3 have no bias gradient
        assert torch.equal(model.net.By[row], before["By"][row])
    assert not torch.equal(model.net.Wy[2], before["Wy"][2])


# ------------------------------------------------------------ seeds and weights
def few_steps(seed, params=None):
    p = {**dict(layers=[8], batch_size=3, n_sample=5, dropout_p_hidden=0.3, momentum=0.2,
                sample_store_size=20), **(params or {})}
    model = GRU4Rec(12, p, seed=seed, support=np.arange(1, 13))
    for k in range(6):
        model.train_step([k, k + 1, k + 2], [k + 3, k + 4, k + 5], model.next_negatives())
    return model


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    a, b, c = few_steps(7), few_steps(7), few_steps(8)
    for name, t in a.neutral_weights().items():
        np.testing.assert_array_equal(t, b.neutral_weights()[name])
    assert not np.array_equal(a.neutral_weights()["Wy"], c.neutral_weights()["Wy"])


@pytest.mark.parametrize("params", [dict(), dict(constrained_embedding=False, embedding=0, layers=[8, 6]),
                                    dict(constrained_embedding=False, embedding=5)])
def test_save_and_load_weights_round_trip(params, tmp_path):
    a = few_steps(1, params)
    a.save_weights(tmp_path / "weights.npz")
    b = GRU4Rec(12, a.params, seed=99)
    b.load_weights(tmp_path / "weights.npz")
    for name, t in a.neutral_weights().items():
        np.testing.assert_array_equal(t, b.neutral_weights()[name])
    a.H, b.H = a.zero_state(2), b.zero_state(2)
    np.testing.assert_array_equal(a.score([1, 2]), b.score([1, 2]))
    with np.load(tmp_path / "weights.npz") as z:
        names = set(z.files)
    if params.get("embedding", 0) == 0 and params.get("constrained_embedding") is False:
        assert {"gru0.Wx", "gru0.Wrz", "gru0.Wh", "gru0.b", "gru1.W_ih", "gru1.W_hh"} <= names
    assert {"item_ids", "meta", "Wy", "By"} <= names


# --------------------------------------------------------------------- sampling
def test_extra_samples_follow_support_to_the_alpha():
    support = np.array([1.0, 4.0, 9.0, 16.0])  # support^0.5 = 1, 2, 3, 4
    store = SampleStore(support, 0.5, n_sample=1000, store_size=50_000, rng=np.random.default_rng(0))
    draws = torch.cat([store.next() for _ in range(120)]).numpy()  # 120 rows: the store is redrawn
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_cdf_inversion_equals_binary_search():
    rng = np.random.default_rng(1)
    cdf = sampling_cdf(rng.integers(1, 1000, 300), 0.75)
    u = np.r_[rng.random(100_000), 0.0, np.nextafter(1.0, 0.0)]
    np.testing.assert_array_equal(invert_cdf(cdf, u), np.searchsorted(cdf, u, side="right"))


# ------------------------------------------------------------------- evaluation
def test_evaluate_counts_equal_the_reference_on_the_same_scores():
    df = five_sessions()
    item_ids = item_index(df)
    model = GRU4Rec(len(item_ids), dict(layers=[8], eval_batch_size=2), seed=2)
    model.net.By.data.uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    model.net.By.data[5] = model.net.By.data[6]  # make a tie possible
    model.item_ids = item_ids
    ranks = model.evaluate(df)
    assert list(ranks.columns) == list(RANK_COLUMNS) and len(ranks) == len(df) - 5
    for sid, session in df.groupby("SessionId"):  # each session alone, from a zero state
        model.H = model.zero_state(1)
        idx = np.searchsorted(item_ids, session["ItemId"].to_numpy())
        for pos in range(len(idx) - 1):
            scores = model.score([idx[pos]])
            higher, ties = rank_counts(scores, np.array([idx[pos + 1]]))
            row = ranks[(ranks.session_id == sid) & (ranks.position == pos)]
            assert row.target.item() == item_ids[idx[pos + 1]]
            assert (row.higher.item(), row.ties.item()) == (higher[0], ties[0])


# --------------------------------------------------------------------- training
def cyclic_sessions(n_sessions=300, n_items=20, seed=0) -> pd.DataFrame:
    """Each session walks the cycle 0 -> 1 -> ... -> 19 -> 0 from a random item."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start, length = rng.integers(n_items), rng.integers(2, 7)
        rows += [(s, (start + j) % n_items, float(s * 100 + j)) for j in range(length)]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.mark.parametrize("params,factor", [
    (dict(loss="cross-entropy", n_sample=8, logq=1.0, sample_alpha=0.5, learning_rate=0.2, momentum=0.2), 0.8),
    (dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0,
          learning_rate=0.1, batch_size=16), 0.98),  # TOP1 in [0, 2) with in-batch negatives moves little
])
def test_training_on_a_structured_toy_set_reduces_the_loss_and_resumes_exactly(params, factor, tmp_path):
    df = cyclic_sessions()
    item_ids = item_index(df)
    data = session_data(df, item_ids)
    support = np.bincount(data.items, minlength=len(item_ids))
    p = dict(layers=[16], n_epochs=3, **params)
    p.setdefault("batch_size", 8)
    model = GRU4Rec(len(item_ids), p, seed=5, support=support)
    history = train(model, data, tmp_path / "full", threads=1, device_label="cpu", progress=False)
    assert history[-1]["loss"] < factor * history[0]["loss"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert (tmp_path / "full" / "checkpoint.pt").exists()
    ranks = model.evaluate(df.head(60))
    assert (ranks.higher == 0).mean() > 0.5  # the next item of the cycle comes first
    # two epochs, then a restart asking for three: the same weights as three in a row
    part = GRU4Rec(len(item_ids), {**p, "n_epochs": 2}, seed=5, support=support)
    train(part, data, tmp_path / "part", threads=1, device_label="cpu", progress=False)
    resumed = GRU4Rec(len(item_ids), p, seed=5, support=support)
    again = train(resumed, data, tmp_path / "part", threads=1, device_label="cpu", progress=False)
    assert [h["epoch"] for h in again] == [1, 2, 3]
    for name, t in model.neutral_weights().items():
        np.testing.assert_array_equal(t, resumed.neutral_weights()[name])


def test_unknown_hyperparameters_are_an_error():
    with pytest.raises(ValueError, match=r"unknown GRU4Rec key\(s\) \[.learnin_rate.\]"):
        GRU4Rec(5, {"learnin_rate": 0.1}, seed=0)


# ------------------------------------------- settings, dropout hook, session order, loss log
def test_official_defaults_and_the_elu_rule_reach_the_model():
    model = GRU4Rec(7, {"loss": "bpr-max"}, seed=0)
    assert (model.params["final_act"], model.params["elu_param"]) == ("elu", 0.5)
    assert (model.params["batch_size"], model.params["sample_alpha"]) == (64, 0.5)
    with pytest.raises(ValueError, match="final_act='linear'.*elu_param=0.5"):
        GRU4Rec(7, {"loss": "bpr-max", "final_act": "linear", "elu_param": 0.5}, seed=0)


@pytest.mark.parametrize("params,sites", [
    (dict(dropout_p_embed=0.2, dropout_p_hidden=0.4, layers=[4, 3]), {"embed": 0.2, "hidden0": 0.4, "hidden1": 0.4}),
    (dict(constrained_embedding=False, embedding=0, dropout_p_embed=0.2, dropout_p_hidden=0.4, layers=[4, 3]),
     {"hidden0": 0.2, "hidden1": 0.4}),  # official PyTorch one-hot rule
    (dict(constrained_embedding=False, embedding=0, dropout_p_embed=0.2, dropout_p_hidden=0.4, layers=[4, 3],
          onehot_dropout="hidden"), {"hidden0": 0.4, "hidden1": 0.4}),  # Theano rule
])
def test_dropout_sites_follow_the_onehot_rule(params, sites):
    assert GRU4Rec(7, dict(batch_size=2, n_sample=0, **params), seed=0).dropout_p == sites


def test_dropout_hook_masks_are_used_in_order_and_the_masked_output_is_the_state():
    p = dict(layers=[4], batch_size=2, n_sample=2, dropout_p_embed=0.5, dropout_p_hidden=0.5)
    plain = GRU4Rec(7, {**p, "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0}, seed=3, support=SUPPORT)
    hooked = GRU4Rec(7, p, seed=3, support=SUPPORT)
    calls = []
    ones = lambda site, shape: (calls.append((site, shape)), np.ones(shape, np.float32))[1]  # noqa: E731
    hooked.dropout_mask_fn = ones
    args = ([0, 1], [2, 3], [4, 5])
    assert hooked.train_step(*args) == pytest.approx(plain.train_step(*args), rel=1e-6)  # all-ones masks = no dropout
    assert calls == [("embed", (2, 4)), ("hidden0", (2, 4))]
    # both models now hold the same weights and state; a second step with a known hidden mask
    mask = np.array([[2.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 2.0]], np.float32)
    hooked.dropout_mask_fn = lambda site, shape: np.ones(shape, np.float32) if site == "embed" else mask
    hooked.train_step([1, 2], [3, 4], [5, 6])
    plain.train_step([1, 2], [3, 4], [5, 6])
    # the new state is the GRU output times the mask (the dropped-out output is the state)
    np.testing.assert_allclose(hooked.H[0].numpy(), plain.H[0].numpy() * mask, rtol=1e-6)


def test_time_sort_false_serves_sessions_in_session_id_order():
    df = five_sessions()
    data = session_data(df, item_index(df), time_sort=False)
    assert list(data.session_ids[data.order]) == [10, 20, 30, 40, 50]


def test_logged_loss_is_the_mean_loss_per_training_event(tmp_path):
    df = five_sessions()
    item_ids = item_index(df)
    data = session_data(df, item_ids)
    p = dict(layers=[4], batch_size=2, n_sample=3, n_epochs=1, sample_store_size=30)
    model = GRU4Rec(len(item_ids), p, seed=4, support=np.ones(len(item_ids)))
    history = train(model, data, tmp_path, threads=1, device_label="cpu", progress=False, checkpoint=False)
    # the same epoch by hand: train_step returns the row sum / nominal batch size (2)
    twin = GRU4Rec(len(item_ids), p, seed=4, support=np.ones(len(item_ids)))
    total, events = 0.0, 0
    for step in session_parallel(data, 2):  # steps of 2, 2, 2, 2, 1 lanes (see the hand-worked schedule above)
        if step.keep is not None:
            twin.keep_lanes(step.keep)
        if step.reset is not None:
            twin.reset_lanes(step.reset)
        total += twin.train_step(step.in_idx, step.out_idx, twin.next_negatives()) * 2
        events += len(step.in_idx)
    assert events == 9 and history[0]["events"] == 9
    assert history[0]["loss"] == pytest.approx(total / events, rel=1e-5)


# ------------------------------------------------------------- CUDA graph steps
class _ReplayedOnCPU(GraphedSteps):
    """GraphedSteps with the CUDA parts replaced: the warm-up runs on the
    current stream and the 'graph' replays the captured body by calling it.
    Everything else (fixed input buffers, resets through the buffer, the
    graph's own hidden state, the hand-over to eager steps at the end) is
    the real code, so this checks all of it but the capture itself
    (benchmarks/gpu_check.py checks that on a GPU)."""

    def _warmup(self, step, negatives):
        EagerSteps.__call__(self, step, negatives)

    def _capture(self):
        self.graph = types.SimpleNamespace(replay=self._body)


GRAPH_SETTINGS = [
    dict(loss="cross-entropy", n_sample=16, logq=1.0, sample_alpha=0.5, dropout_p_hidden=0.3),
    dict(loss="bpr-max", n_sample=16, elu_param=0.5, constrained_embedding=False, embedding=0, dropout_p_embed=0.2),
    # the 2016 one-hot setting: no extra samples, dropout after the GRU (Theano rule)
    dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0, dropout_p_hidden=0.5,
         onehot_dropout="hidden"),
    dict(loss="bpr", n_sample=8, constrained_embedding=False, embedding=5, dropout_p_embed=0.2,
         dropout_p_hidden=0.3, layers=[8, 6], momentum=0.2),
]


def _make_group(params, seeds, deterministic=None):
    """A factory of the model of test data (cyclic_sessions): one seed, or several together."""
    df = cyclic_sessions()
    item_ids = item_index(df)
    data = session_data(df, item_ids)
    support = np.bincount(data.items, minlength=len(item_ids))
    p = {"layers": [8], "batch_size": 4, **params}

    def make():
        models = [GRU4Rec(len(item_ids), p, seed=s, support=support, deterministic=deterministic) for s in seeds]
        return SeedsTogether(models) if len(models) > 1 else models[0]
    return make, data


@pytest.mark.parametrize("seeds", [[2], [2, 5, 9]], ids=["alone", "together"])
@pytest.mark.parametrize("params", GRAPH_SETTINGS)
def test_graphed_steps_train_exactly_as_eager_steps(params, seeds):
    """One epoch through the graph-step runner (fixed buffers, lanes reset
    through the buffer, dropout keys through the buffer, the batch shrinking
    at the end) gives bit for bit the weights, loss and state of the eager
    runner: one seed, and seeds together; one-hot input with and without
    extra samples included."""
    make, data = _make_group(params, seeds)
    results = []
    for runner in (EagerSteps, _ReplayedOnCPU):
        model = make()
        model.H = model.zero_state(4)
        loss_sum = torch.zeros(model.loss_shape)
        run = runner(model, loss_sum)
        steps = list(session_parallel(data, 4, min_lanes=2 if params["n_sample"] == 0 else 1))
        assert any(s.reset is not None for s in steps) and any(s.keep is not None for s in steps)
        for step in steps:
            run(step, model.next_negatives())
        run.finish()
        if runner is _ReplayedOnCPU:
            assert run.graph is not None and run.eager_steps == WARMUP_STEPS
        models = getattr(model, "models", [model])
        assert models[0].has_dropout
        results.append((loss_sum.clone(), [t.detach().clone() for m in models for t in m.net.parameters()],
                        [h.clone() for h in model.H]))
    (l0, w0, h0), (l1, w1, h1) = results
    assert torch.equal(l0, l1)
    for a, b in zip(w0 + h0, w1 + h1):
        assert torch.equal(a, b)


@pytest.mark.parametrize("seeds", [[2], [2, 5]], ids=["alone", "together"])
def test_the_gpu_check_of_a_graph_passes_replays_of_the_same_step(monkeypatch, seeds):
    """steps.graph_against_eager (the GPU check of gpu_check.py and the CUDA
    tests), run here with the capture replaced: three bit-equal runs pass."""
    from implementations.gru4rec_torch import steps

    monkeypatch.setattr(steps, "GraphedSteps", _ReplayedOnCPU)
    make, data = _make_group(GRAPH_SETTINGS[0], seeds)
    r = steps.graph_against_eager(make, data, n_steps=40)
    assert r["captured"] and r["finite"] and r["same"] and r["reproducible"]
    assert r["eager"] == r["again"] == r["graph"] and r["spread"] == r["diff"] == 0.0


@pytest.mark.parametrize("fault", ["frozen mask", "stale negatives", "stale reset"])
def test_the_gpu_check_of_a_graph_fails_a_frozen_mask_or_a_stale_buffer(monkeypatch, fault):
    """The same check fails when the replays reuse the first replay's dropout
    key (a mask frozen at the capture), its negatives or its reset flags."""
    from implementations.gru4rec_torch import steps

    class Faulty(_ReplayedOnCPU):
        def _load(self, step, negatives):
            first = not hasattr(self, "_seen")
            self._seen = True
            B = self.lanes
            keep = self._inputs.clone()
            super()._load(step, negatives if first or fault != "stale negatives" else self._negatives.clone())
            if not first and fault == "frozen mask":
                self._inputs[3 * B:] = keep[3 * B:]
            if not first and fault == "stale reset":
                self._inputs[2 * B:3 * B] = keep[2 * B:3 * B]

    monkeypatch.setattr(steps, "GraphedSteps", Faulty)
    make, data = _make_group(GRAPH_SETTINGS[0], [2])
    r = steps.graph_against_eager(make, data, n_steps=60)
    assert r["captured"] and r["reproducible"] and not r["same"], r


def test_step_runner_is_eager_on_the_cpu():
    model = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=0, loss="top1", final_act="tanh"), seed=0)
    assert type(step_runner(model, torch.zeros(()))) is EagerSteps


# ------------------------------------------------------------ seeds together
from implementations.gru4rec_torch import model as torch_model  # noqa: E402
from implementations.gru4rec_torch.seeds import SeedsTogether  # noqa: E402
from implementations.gru4rec_torch.train import train_together  # noqa: E402

#: every loss, every embedding mode (constrained / separate embedding / one-hot), dropout on
TOGETHER_SETTINGS = [
    dict(loss="cross-entropy", n_sample=16, logq=1.0, sample_alpha=0.5, dropout_p_hidden=0.3, momentum=0.2),
    dict(loss="bpr-max", n_sample=16, elu_param=0.5, constrained_embedding=False, embedding=0,
         dropout_p_embed=0.2, momentum=0.1, bpreg=0.7),  # one-hot: dropout_p_embed on the GRU's output
    dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0,
         dropout_p_hidden=0.5, onehot_dropout="hidden", time_sort=False),  # 2016: one-hot, no extra samples
    dict(loss="bpr", n_sample=8, constrained_embedding=False, embedding=5, dropout_p_embed=0.2,
         dropout_p_hidden=0.3, layers=[8, 6]),
    dict(loss="top1-max", n_sample=8, dropout_p_embed=0.2, dropout_p_hidden=0.3, momentum=0.3),
    dict(loss="cross-entropy", n_sample=8, constrained_embedding=False, embedding=0, dropout_p_hidden=0.3,
         final_act="tanh", logq=0.5, layers=[8, 6]),
]


def _toy_run(params, n_epochs=2):
    df = cyclic_sessions()
    item_ids = item_index(df)
    p = {"layers": [8], "batch_size": 4, "n_epochs": n_epochs, "learning_rate": 0.1, **params}
    data = session_data(df, item_ids, time_sort=p.get("time_sort", True))
    support = np.bincount(data.items, minlength=len(item_ids))

    def make(seed):
        m = GRU4Rec(len(item_ids), p, seed=seed, support=support)
        m.item_ids = item_ids
        return m
    return make, data, cyclic_sessions(n_sessions=60, seed=9)


def _assert_same_seed(alone, together, alone_log, together_log, test):
    for name, w in alone.neutral_weights().items():
        np.testing.assert_allclose(together.neutral_weights()[name], w, rtol=1e-5, atol=1e-6, err_msg=name)
    assert [h["loss"] for h in together_log] == pytest.approx([h["loss"] for h in alone_log], rel=1e-6)
    pd.testing.assert_frame_equal(together.evaluate(test), alone.evaluate(test))  # identical rank records


@pytest.mark.parametrize("params", TOGETHER_SETTINGS)
def test_seeds_trained_together_equal_seeds_trained_alone(params, tmp_path):
    """Three seeds trained as one batched model (own init, negatives, dropout
    masks; the shared batches, resets and shrinking end of each epoch) give
    each seed's weights (float32 tolerance), logged losses and IDENTICAL rank
    records of that seed trained alone; each seed writes its own folder."""
    make, data, test = _toy_run(params)
    seeds = [3, 4, 11]
    alone = [make(s) for s in seeds]
    alone_logs = [train(m, data, tmp_path / f"alone{s}", threads=1, device_label="cpu", progress=False)
                  for m, s in zip(alone, seeds)]
    together = [make(s) for s in seeds]
    together_logs = train_together(together, data, [tmp_path / f"together{s}" for s in seeds], threads=1,
                                   device_label="cpu", progress=False)
    for a, t, la, lt in zip(alone, together, alone_logs, together_logs):
        _assert_same_seed(a, t, la, lt, test)
        assert [h["seeds_together"] for h in lt] == [3, 3]
    for s in seeds:
        assert (tmp_path / f"together{s}" / "checkpoint.pt").exists()
        assert len((tmp_path / f"together{s}" / "train_log.jsonl").read_text().splitlines()) == 2
    # the seeds are different models (a shared stream or init would make them equal)
    assert not np.allclose(together[0].neutral_weights()["By"], together[1].neutral_weights()["By"])
    assert together[0].has_dropout


def test_seeds_together_resume_from_their_own_checkpoints_without_retraining(tmp_path):
    """A job stopped after seed 3 finished epoch 1 and seed 4 finished nothing:
    the re-run trains seed 4's epoch 1 alone, then both together; seed 3's
    epoch 1 is not trained again, and both end as if trained alone."""
    params = TOGETHER_SETTINGS[0]
    make, data, test = _toy_run(params)
    first = make(3)
    make1, _, _ = _toy_run(params, n_epochs=1)
    train(make1(3), data, tmp_path / "s3", threads=1, device_label="cpu", progress=False)
    before = json.loads((tmp_path / "s3" / "train_log.jsonl").read_text().splitlines()[0])
    models = [first, make(4)]
    logs = train_together(models, data, [tmp_path / "s3", tmp_path / "s4"], threads=1, device_label="cpu",
                          progress=False)
    assert logs[0][0] == before and "seeds_together" not in logs[0][0]  # epoch 1 kept, not retrained
    assert [h["seeds_together"] for h in logs[1]] == [1, 2]  # seed 4's epoch 1 ran alone
    for seed, m, lt in zip((3, 4), models, logs):
        ref = make(seed)
        la = train(ref, data, tmp_path / f"ref{seed}", threads=1, device_label="cpu", progress=False)
        _assert_same_seed(ref, m, la, lt, test)
    # a third run finds everything done and trains nothing
    again = [make(3), make(4)]
    logs2 = train_together(again, data, [tmp_path / "s3", tmp_path / "s4"], threads=1, device_label="cpu",
                           progress=False)
    assert logs2 == logs


def test_seeds_together_refuses_models_of_different_runs():
    a = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=2), seed=1)
    b = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=3), seed=2)
    with pytest.raises(ValueError, match="differ in params"):
        SeedsTogether([a, b])


def test_run_seeds_trains_the_seeds_together_and_as_alone(tmp_path, monkeypatch):
    """gru4rec_repro.run.run_seeds uses run.seeds_together: the same rank
    records and metrics as with GRU4REC_TORCH_SEEDS_TOGETHER=0."""
    from gru4rec_repro.run import run_seeds

    train_df, test_df = cyclic_sessions(n_sessions=120), cyclic_sessions(n_sessions=30, seed=4)
    params = dict(layers=[8], batch_size=4, n_epochs=1, n_sample=4, dropout_p_hidden=0.2)
    together = run_seeds("gru4rec_torch", train_df, test_df, params, [1, 2], tmp_path / "t", progress=False)
    monkeypatch.setenv("GRU4REC_TORCH_SEEDS_TOGETHER", "0")
    alone = run_seeds("gru4rec_torch", train_df, test_df, params, [1, 2], tmp_path / "a", progress=False)
    for t, a in zip(together, alone):
        pd.testing.assert_frame_equal(pd.read_parquet(t / "ranks.parquet"), pd.read_parquet(a / "ranks.parquet"))
        assert json.loads((t / "metrics.json").read_text()) == json.loads((a / "metrics.json").read_text())
        assert json.loads((t / "train_log.jsonl").read_text())["seeds_together"] == 2
        assert "seeds_together" not in json.loads((a / "train_log.jsonl").read_text())


def test_batched_products_round_as_single_ones_on_both_sides_of_the_small_bmm_threshold():
    """model.mm makes products below PyTorch's small-bmm threshold seed by seed
    because torch.bmm rounds them differently from torch.mm there; above it,
    bmm equals mm seed by seed. A PyTorch that moves the threshold fails here."""
    gen = torch.Generator().manual_seed(0)
    small = (torch.randn(4, 3, 4, generator=gen), torch.randn(4, 7, 4, generator=gen).mT)  # 84 < SMALL_BMM
    large = (torch.randn(4, 32, 16, generator=gen), torch.randn(4, 16, 48, generator=gen))
    for a, b in (small, large):
        got = torch_model.mm(a, b)
        assert all(torch.equal(got[s], torch.mm(a[s], b[s])) for s in range(4))
    a, b = small
    assert any(not torch.equal(torch.bmm(a, b)[s], torch.mm(a[s], b[s])) for s in range(4))
    assert small[0].shape[1] * small[0].shape[2] * small[1].shape[2] < torch_model.SMALL_BMM
    assert large[0].shape[1] * large[0].shape[2] * large[1].shape[2] >= torch_model.SMALL_BMM


# ------------------------------------------------------ dropout masks, fixed-order sums
def test_dropout_masks_are_a_function_of_key_step_site_and_element():
    """Counter-based masks: the same (key, step, site) gives the same mask as an
    int key, a tensor key, or one seed of a batch of keys; other steps, keys and
    sites give other masks; the keep rate is 1 - p; scaled by 1 / (1 - p)."""
    keys = [torch_model.step_key(k, 5) for k in (7, 8)]
    a = torch_model.dropout_mask((32, 50), 1, keys[0], 0.3)
    assert torch.equal(a, torch_model.dropout_mask((32, 50), 1, torch.tensor(keys[0]), 0.3))
    both = torch_model.dropout_mask((2, 32, 50), 1, torch.tensor(keys), 0.3)
    assert torch.equal(both[0], a) and torch.equal(both[1], torch_model.dropout_mask((32, 50), 1, keys[1], 0.3))
    assert not torch.equal(both[0], both[1])
    assert not torch.equal(a, torch_model.dropout_mask((32, 50), 2, keys[0], 0.3))
    assert not torch.equal(a, torch_model.dropout_mask((32, 50), 1, torch_model.step_key(7, 6), 0.3))
    assert a.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    many = torch.stack([torch_model.dropout_mask((32, 50), 1, torch_model.step_key(7, t), 0.3) for t in range(200)])
    assert (many > 0).float().mean().item() == pytest.approx(0.7, abs=0.005)
    assert torch_model.mix32(123456789) == torch_model.mix32(torch.tensor(123456789)).item()


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="numba is not installed: the fused CPU kernel is not used")
@pytest.mark.parametrize("p", [0.1, 0.5, 0.77])
def test_the_cpu_mask_kernel_draws_the_masks_of_the_tensor_operations(p):
    """cpu_kernels.dropout_masks (the CPU path) and the tensor operations (what
    a GPU and a CUDA graph run) give the same bits: one key, a seed batch of keys."""
    for step in range(20):
        for shape, key in (((32, 100), torch_model.step_key(3, step)),
                           ((5, 7, 30), torch.tensor([torch_model.step_key(k, step) for k in range(5)]))):
            for site in (0, 1, 3):
                fused = torch_model.dropout_mask(shape, site, key, p)
                plain = torch_model.dropout_mask(shape, site, key, p, cpu_kernel=False)
                assert torch.equal(fused, plain) and fused.shape == shape and fused.dtype == torch.float32


@pytest.mark.parametrize("together", [False, True])
def test_fixed_order_sums_of_repeated_rows_train_as_index_add(together):
    """deterministic=True (a 0/1-matrix product instead of index_add_ for the
    rows a mini-batch repeats) trains to the same weights, alone and together."""
    make, data, _ = _toy_run(dict(n_sample=8, momentum=0.2, dropout_p_hidden=0.2), n_epochs=1)
    runs = []
    for det in (False, True):
        models = [make(s) for s in (1, 2)]
        for m in models:
            m.deterministic = det
        group = SeedsTogether(models) if together else models[0]
        group.H = group.zero_state(4)
        run = EagerSteps(group, torch.zeros(group.loss_shape))
        for step in list(session_parallel(data, 4))[:60]:
            run(step, group.next_negatives())
        runs.append(models[0])
    for name, w in runs[0].neutral_weights().items():
        np.testing.assert_allclose(runs[1].neutral_weights()[name], w, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="numba is not installed")
def test_kernels_are_loaded_when_the_model_is_built():
    """cpu_kernels.warm_up (the optimizer and, with dropout, the model call it when built on the
    CPU) loads each kernel for the argument types the training steps pass: a step adds no
    compiled signature (a warm-up of other types would leave the first step to load one)."""
    make, data, _ = _toy_run({"dropout_p_hidden": 0.3, "momentum": 0.2}, n_epochs=1)
    m = make(1)
    kernels = (cpu_kernels.rows_update, cpu_kernels.dense_update, cpu_kernels.dropout_masks)
    assert {"rows", "dense", "masks"} <= cpu_kernels._WARM
    built = [len(k.signatures) for k in kernels]
    assert min(built) >= 1
    m.train_step(np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0]), np.array([3, 4, 5]))
    assert [len(k.signatures) for k in kernels] == built  # the step loaded nothing new
    with pytest.raises(ValueError, match="unknown kernel"):
        cpu_kernels.warm_up("nope")
