"""SEVIR plugin: tiny vil_{training,testing}.h5 files in the real layout, read through the spec and the CLI
(clip counts, shapes, the check report and a smoke run on the same sample data are core's dataset contract test)."""
import numpy as np
import pytest

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_sevir.sample import N_TEST, N_TRAIN, write_fixture


def test_open_streams_sequences(tmp_path):
    train_seq, test_seq = write_fixture(tmp_path)
    spec = get_dataset("sevir")
    test = spec.open(str(tmp_path), "test", 13, 12)
    assert len(spec.open(str(tmp_path), "train", 13, 12)) == N_TRAIN and len(test) == N_TEST
    x, y = test[1]
    assert x.shape == (13, 1, 384, 384) and y.shape == (12, 1, 384, 384)
    native = np.concatenate([x.numpy(), y.numpy()])[:, 0] * 255
    assert np.allclose(native, test_seq[1].transpose(2, 0, 1), atol=1e-3)
    # a shorter task ends its input at the last observed frame
    x, y = spec.open(str(tmp_path), "test", 5, 3)[0]
    assert np.allclose(x.numpy()[:, 0] * 255, test_seq[0][..., 8:13].transpose(2, 0, 1), atol=1e-3)
    assert np.allclose(y.numpy()[:, 0] * 255, test_seq[0][..., 13:16].transpose(2, 0, 1), atol=1e-3)
    assert spec.denormalize(x).max() <= 255 and "train: 3 sequences" in spec.check(str(tmp_path))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="vil_training.h5 not found"):
        get_dataset("sevir").open(str(tmp_path), "train", 13, 12)


def test_corrupt_file(tmp_path):
    write_fixture(tmp_path)
    path = tmp_path / "sevir" / "processed" / "vil_testing.h5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="looks damaged"):
        get_dataset("sevir").open(str(tmp_path), "test", 13, 12)


def test_wrong_shape(tmp_path):
    write_fixture(tmp_path, size=192)
    with pytest.raises(UserError, match=r"'IN' has shape \(3, 192, 192, 13\)"):
        get_dataset("sevir").open(str(tmp_path), "train", 13, 12)


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "sevir-13-12", "--data-root", str(tmp_path)]) == 0
    assert "test: 2 clips for sevir-13-12" in capsys.readouterr().out
    assert main(["data", "check", "sevir-13-12", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "vil_training.h5 not found" in err and "Traceback" not in err
