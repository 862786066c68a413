"""GRU4Rec settings read as the authors' code reads them (gru4rec_repro/gru4rec_params.py).

The fixture files below are written in the form of the authors' parameter
files (PyTorch ``paramfiles/*.py``, Theano ``param_samples/*.py``); the
expected settings are spelled out by hand from the values in the file and the
official PyTorch defaults of SPEC.md section 4.
"""
from __future__ import annotations

import pytest

from gru4rec_repro.gru4rec_params import (
    OFFICIAL_DEFAULTS, describe, parse_ps, read_params_file, resolve,
)

# the official PyTorch file rsc15_xe_shared_100_best.py, in its form
PYTORCH_XE = """from collections import OrderedDict
gru4rec_params = OrderedDict([
('loss', 'cross-entropy'),
('constrained_embedding', True),
('embedding', 0),
('elu_param', 0),
('layers', [100]),
('n_epochs', 10),
('batch_size', 32),
('dropout_p_embed', 0.0),
('dropout_p_hidden', 0.4),
('learning_rate', 0.2),
('momentum', 0.2),
('n_sample', 2048),
('sample_alpha', 0.5),
('bpreg', 0.0),
('logq', 1.0)
])
"""

# a BPR-max file of the official PyTorch form (values made up for the test)
PYTORCH_BPRMAX = """from collections import OrderedDict
gru4rec_params = OrderedDict([
('loss', 'bpr-max'),
('constrained_embedding', True),
('embedding', 0),
('elu_param', 1),
('layers', [224]),
('batch_size', 80),
('dropout_p_embed', 0.5),
('dropout_p_hidden', 0.05),
('momentum', 0.4),
('sample_alpha', 0.4),
('bpreg', 1.95),
])
"""

# the Theano param_samples/rsc15_bpr-max_constrained.py form
THEANO_BPRMAX = """from collections import OrderedDict
gru4rec_params = OrderedDict([
('layers', [100]),
('loss', 'bpr-max'),
('final_act', 'elu-0.5'),
('hidden_act', 'tanh'),
('adapt', 'adagrad'),
('n_epochs', 10),
('batch_size', 32),
('dropout_p_embed', 0.0),
('dropout_p_hidden', 0.0),
('learning_rate', 0.2),
('momentum', 0.1),
('sample_alpha', 0.0),
('n_sample', 2048),
('bpreg', 0.5),
('constrained_embedding', True)
])
"""

# the Theano cross-entropy form: final_act softmax = the loss's own softmax
THEANO_XE = THEANO_BPRMAX.replace("'bpr-max'", "'cross-entropy'").replace("'elu-0.5'", "'softmax'") \
    .replace("('bpreg', 0.5),\n", "")

OURS = {"onehot_dropout": "embed", "time_sort": True, "sample_store_size": 10_000_000, "eval_batch_size": 512}


def write(tmp_path, text, name="params.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------- reading files
def test_official_pytorch_file_gives_exactly_the_official_settings(tmp_path):
    path = write(tmp_path, PYTORCH_XE)
    assert read_params_file(path) == {
        "loss": "cross-entropy", "constrained_embedding": True, "embedding": 0, "elu_param": 0,
        "layers": [100], "n_epochs": 10, "batch_size": 32, "dropout_p_embed": 0.0, "dropout_p_hidden": 0.4,
        "learning_rate": 0.2, "momentum": 0.2, "n_sample": 2048, "sample_alpha": 0.5, "bpreg": 0.0, "logq": 1.0}
    p = resolve({"params_file": str(path)})
    assert p == {"loss": "cross-entropy", "constrained_embedding": True, "embedding": 0, "elu_param": 0.0,
                 "final_act": "linear", "layers": [100], "n_epochs": 10, "batch_size": 32,
                 "dropout_p_embed": 0.0, "dropout_p_hidden": 0.4, "learning_rate": 0.2, "momentum": 0.2,
                 "n_sample": 2048, "sample_alpha": 0.5, "bpreg": 0.0, "logq": 1.0, **OURS}


def test_keys_left_out_of_a_file_take_the_official_defaults_and_bprmax_gets_elu(tmp_path):
    p = resolve({"params_file": str(write(tmp_path, PYTORCH_BPRMAX))})
    # from the file
    assert (p["loss"], p["layers"], p["batch_size"], p["bpreg"], p["momentum"]) == ("bpr-max", [224], 80, 1.95, 0.4)
    # left out -> official PyTorch defaults (learning_rate 0.05, n_sample 2048, n_epochs 10, logq 0)
    assert (p["learning_rate"], p["n_sample"], p["n_epochs"], p["logq"]) == (0.05, 2048, 10, 0.0)
    # elu_param 1 on BPR-max: ELU(1) is applied, as in the official code
    assert (p["final_act"], p["elu_param"]) == ("elu", 1.0)


def test_theano_file_with_elu_string(tmp_path):
    p = resolve({"params_file": str(write(tmp_path, THEANO_BPRMAX))})
    assert (p["final_act"], p["elu_param"]) == ("elu", 0.5)
    assert (p["learning_rate"], p["momentum"], p["sample_alpha"], p["bpreg"], p["batch_size"]) == (0.2, 0.1, 0.0, 0.5, 32)
    assert "hidden_act" not in p and "adapt" not in p


def test_theano_softmax_is_cross_entropys_own(tmp_path):
    p = resolve({"params_file": str(write(tmp_path, THEANO_XE))})
    assert (p["loss"], p["final_act"], p["elu_param"]) == ("cross-entropy", "linear", 0.0)


def test_theano_key_with_an_unimplemented_value_is_refused(tmp_path):
    path = write(tmp_path, THEANO_BPRMAX.replace("'adagrad'", "'rmsprop'"))
    with pytest.raises(ValueError, match="adapt='rmsprop' is not implemented"):
        resolve({"params_file": str(path)})


def test_file_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    text = f"open({str(marker)!r}, 'w').write('x')\n" + PYTORCH_XE
    p = resolve({"params_file": str(write(tmp_path, text))})
    assert not marker.exists()
    assert p["dropout_p_hidden"] == 0.4
    with pytest.raises(ValueError, match="not a literal"):
        read_params_file(write(tmp_path, "gru4rec_params = OrderedDict([('layers', [int('5')])])", "bad.py"))


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_params_file(tmp_path / "missing.py")
    with pytest.raises(ValueError, match=r"nothing\.py: no assignment to gru4rec_params"):
        read_params_file(write(tmp_path, "x = 1\ny = 2\n", "nothing.py"))
    with pytest.raises(ValueError, match="'loss' given twice"):
        read_params_file(write(tmp_path, "p = OrderedDict([('loss', 'top1'), ('loss', 'bpr')])", "twice.py"))


def test_dict_literal_and_relative_path(tmp_path):
    write(tmp_path, "gru4rec_params = {'loss': 'top1', 'final_act': 'tanh', 'n_sample': 0}", "d.py")
    p = resolve({"params_file": "d.py"}, base_dir=tmp_path)
    assert (p["loss"], p["final_act"], p["n_sample"], p["elu_param"]) == ("top1", "tanh", 0, 0.0)


# ------------------------------------------------------------------- -ps strings
def test_ps_values_are_typed():
    assert parse_ps("loss=bpr-max,final_act=elu-0.5,layers=100/200,constrained_embedding=False,"
                    "learning_rate=0.2,n_sample=2048,embedding=layersize") == {
        "loss": "bpr-max", "final_act": "elu-0.5", "layers": [100, 200], "constrained_embedding": False,
        "learning_rate": 0.2, "n_sample": 2048, "embedding": "layersize"}
    assert parse_ps("layers=100") == {"layers": 100}
    with pytest.raises(ValueError, match="'oops' is not name=value"):
        parse_ps("loss=top1,oops")


def test_ps_resolves_like_the_official_set_params():
    p = resolve({"ps": "loss=bpr-max,layers=100,elu_param=1,embedding=layersize,constrained_embedding=False"})
    assert (p["layers"], p["elu_param"], p["final_act"], p["embedding"]) == ([100], 1.0, "elu", 100)
    assert isinstance(p["elu_param"], float)


def test_explicit_keys_override_file_and_ps_and_elu_param_replaces_the_files_elu(tmp_path):
    path = write(tmp_path, THEANO_BPRMAX)
    p = resolve({"params_file": str(path), "ps": "momentum=0.3", "elu_param": 1.0, "batch_size": 50})
    assert (p["momentum"], p["elu_param"], p["final_act"], p["batch_size"]) == (0.3, 1.0, "elu", 50)
    p = resolve({"params_file": str(path), "final_act": "linear"})  # the file's ELU switched off explicitly
    assert (p["final_act"], p["elu_param"]) == ("linear", 0.0)


# ------------------------------------------------------------- the ELU rule
def test_bprmax_default_is_elu_half():
    p = resolve({"loss": "bpr-max"})
    assert (p["final_act"], p["elu_param"]) == ("elu", 0.5)
    assert OFFICIAL_DEFAULTS["elu_param"] == 0.5


def test_bprmax_linear_only_when_elu_param_is_zero_or_final_act_linear_alone():
    assert resolve({"loss": "bpr-max", "elu_param": 0})["final_act"] == "linear"
    p = resolve({"loss": "bpr-max", "final_act": "linear"})
    assert (p["final_act"], p["elu_param"]) == ("linear", 0.0)


def test_contradictions_are_refused_naming_both_keys():
    with pytest.raises(ValueError, match=r"final_act='linear'.*elu_param=0\.5"):
        resolve({"loss": "bpr-max", "final_act": "linear", "elu_param": 0.5})
    with pytest.raises(ValueError, match=r"final_act='tanh'.*elu_param=1\.0"):
        resolve({"loss": "top1", "final_act": "tanh", "elu_param": 1.0})
    with pytest.raises(ValueError, match=r"final_act='elu'.*elu_param=0\.0"):
        resolve({"loss": "bpr-max", "final_act": "elu", "elu_param": 0})
    with pytest.raises(ValueError, match=r"final_act='elu-0\.5' and elu_param=1"):
        resolve({"loss": "bpr-max", "final_act": "elu-0.5", "elu_param": 1})


def test_contradiction_across_sources_names_where_each_key_came_from(tmp_path):
    path = write(tmp_path, THEANO_BPRMAX.replace("'elu-0.5'", "'linear'"))
    with pytest.raises(ValueError, match=r"final_act='linear' \(params_file .*\) and elu_param=0\.5 \(params\)"):
        resolve({"params_file": str(path), "elu_param": 0.5})


def test_cross_entropy_never_gets_elu_from_elu_param():
    # the official code ignores elu_param with cross-entropy (default 0.5 and explicit alike)
    assert resolve({})["final_act"] == "linear"
    p = resolve({"loss": "cross-entropy", "elu_param": 0.5})
    assert (p["final_act"], p["elu_param"]) == ("linear", 0.0)
    # ... unless final_act asks for it
    assert resolve({"loss": "cross-entropy", "final_act": "elu-1"})["elu_param"] == 1.0
    with pytest.raises(ValueError, match="elu_param=0.5 .* has no effect on loss 'top1'"):
        resolve({"loss": "top1", "elu_param": 0.5})


def test_resolve_is_idempotent():
    for params in ({"loss": "bpr-max"}, {"loss": "bpr-max", "final_act": "tanh"}, {"ps": "loss=top1,final_act=tanh"},
                   {"loss": "cross-entropy", "logq": 1.0}):
        p = resolve(params)
        assert resolve(p) == p


# ------------------------------------------------------------ keys and values
def test_official_defaults_and_ours():
    p = resolve({})
    expected = {"loss": "cross-entropy", "layers": [100], "n_epochs": 10, "batch_size": 64,
                "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0, "learning_rate": 0.05, "momentum": 0.0,
                "sample_alpha": 0.5, "n_sample": 2048, "embedding": 0, "constrained_embedding": True,
                "bpreg": 1.0, "logq": 0.0, "final_act": "linear", "elu_param": 0.0, **OURS}
    assert p == expected


def test_unknown_keys_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown GRU4Rec key\(s\) \['hiden_size', 'lr'\]; known: \[.*'layers'"):
        resolve({"lr": 0.1, "hiden_size": 100})
    p = resolve({"jit_compile": True}, extra={"jit_compile": False})
    assert p["jit_compile"] is True
    assert resolve({}, extra={"jit_compile": False})["jit_compile"] is False


def test_new_keys_and_their_values():
    p = resolve({"onehot_dropout": "hidden", "time_sort": False, "hidden_size": 64})
    assert (p["onehot_dropout"], p["time_sort"], p["layers"]) == ("hidden", False, [64])
    with pytest.raises(ValueError, match="onehot_dropout 'theano' is not one of"):
        resolve({"onehot_dropout": "theano"})
    with pytest.raises(ValueError, match="time_sort must be True or False"):
        resolve({"time_sort": "sometimes"})
    with pytest.raises(ValueError, match="dropout_p_hidden must be in"):
        resolve({"dropout_p_hidden": 1.0})
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        resolve({"batch_size": 3.5})
    with pytest.raises(ValueError, match="loss 'xe' is not one of"):
        resolve({"loss": "xe"})


def test_describe_names_the_dropout_rule_and_session_order():
    onehot = {"loss": "bpr-max", "constrained_embedding": False, "embedding": 0, "dropout_p_embed": 0.2}
    line = describe(onehot)
    assert "ELU(0.5)" in line and "dropout_p_embed 0.2 (official PyTorch rule)" in line
    assert "dropout_p_hidden 0 (Theano rule)" in describe({**onehot, "onehot_dropout": "hidden"})
    assert "SessionId order" in describe({"time_sort": False})
    assert describe(resolve(onehot)) == line
