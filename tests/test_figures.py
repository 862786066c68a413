"""The figures: drawn from the same tiny results folder as the table tests."""
import pytest

from gru4rec_repro import figures
from test_tables import config, make_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results") / "tiny")


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", figures.FIGURES)
def test_each_figure_is_a_non_empty_png(results, tmp_path, name):
    out = figures.make_figure(name, results, config(), "tiny", tmp_path / f"{name}.png")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.png"]  # no temporary file left


def test_loss_curves_average_the_seeds(results):
    st = figures.Study(results, config(), "tiny")
    curve = figures.loss_curves(st, "keras-xe")  # both seeds log losses 2.0, 1.5
    assert list(curve["epoch"]) == [1, 2] and list(curve["mean"]) == [2.0, 1.5]
    assert list(curve["sd"]) == [0.0, 0.0] and list(curve["n"]) == [2, 2]
    assert figures.loss_curves(st, "pop") is None  # one-pass baseline: no loss
    assert figures.setting_of("keras-xe") == "xe" and figures.setting_of("pop") == "pop"


def test_unknown_figure_is_refused(results, tmp_path):
    with pytest.raises(ValueError, match="unknown figure"):
        figures.make_figure("pie", results, config(), "tiny", tmp_path / "x.png")


def test_figure_without_data_still_writes_a_png(results, tmp_path):
    out = figures.make_figure("training_loss", results, config({"pop": "pop"}), "tiny", tmp_path / "l.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
