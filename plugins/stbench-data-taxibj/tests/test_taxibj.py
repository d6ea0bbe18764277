"""TaxiBJ plugin: a tiny dataset.npz in the real layout, read back through the spec and the CLI (clip
counts, shapes, the check report and a smoke run on the same sample data are core's dataset contract test)."""
import numpy as np
import pytest

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_taxibj.sample import N_TEST, N_TRAIN, write_fixture


@pytest.mark.parametrize("compressed", [False, True])
def test_open_reads_clips_in_zero_one(tmp_path, compressed):
    arrays = write_fixture(tmp_path, compressed)
    spec = get_dataset("taxibj")
    train = spec.open(str(tmp_path), "train", 4, 4)
    test = spec.open(str(tmp_path), "test", 4, 4)
    assert (len(train), len(test)) == (N_TRAIN, N_TEST)
    x, y = test[1]
    assert x.shape == (4, 2, 32, 32) and y.shape == (4, 2, 32, 32) and x.dtype == y.dtype
    assert np.allclose(x.numpy(), (arrays["X_test"][1] + 1) / 2, atol=1e-6)
    assert np.allclose(y.numpy(), (arrays["Y_test"][1] + 1) / 2, atol=1e-6)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # a shorter task keeps the observed/future boundary: last 2 observed, first 3 future frames
    x, y = spec.open(str(tmp_path), "train", 2, 3)[0]
    assert np.allclose(x.numpy(), (arrays["X_train"][0][2:] + 1) / 2, atol=1e-6)
    assert np.allclose(y.numpy(), (arrays["Y_train"][0][:3] + 1) / 2, atol=1e-6)
    assert "train: 6 clips" in spec.check(str(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="taxibj/dataset.npz not found"):
        get_dataset("taxibj").open(str(tmp_path), "train", 4, 4)


def test_truncated_file(tmp_path):
    write_fixture(tmp_path)
    path = tmp_path / "taxibj" / "dataset.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="damaged"):
        get_dataset("taxibj").open(str(tmp_path), "train", 4, 4)


def test_wrong_shape(tmp_path):
    write_fixture(tmp_path, x_test_shape=(N_TEST, 4, 2, 16, 16))
    with pytest.raises(UserError, match=r"'X_test' has shape \(3, 4, 2, 16, 16\)"):
        get_dataset("taxibj").open(str(tmp_path), "test", 4, 4)


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "taxibj-4-4", "--data-root", str(tmp_path)]) == 0
    assert "test: 3 clips for taxibj-4-4" in capsys.readouterr().out
    assert main(["data", "check", "taxibj-4-4", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "taxibj/dataset.npz not found" in err and "Traceback" not in err
