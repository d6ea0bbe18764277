"""SEVIR plugin: tiny vil_{training,testing}.h5 files in the real layout, read through the spec and the CLI."""
from pathlib import Path

import h5py
import numpy as np
import pytest

from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_common.testing import smoke_record as run_persistence

N_TRAIN, N_TEST = 3, 2


def write_file(path, n, size=384, frames_in=13):
    rng = np.random.default_rng(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    seq = np.zeros((n, size, size, 25), np.uint8)
    for i in range(n):  # a few storm cells; mostly empty sky, like real VIL
        for t in range(25):
            seq[i, 40 + 4 * t:90 + 4 * t, 100:160, t] = rng.integers(0, 256)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("IN", data=seq[..., :frames_in], compression="gzip", chunks=(1, size, size, frames_in))
        handle.create_dataset("OUT", data=seq[..., 13:], compression="gzip", chunks=(1, size, size, 12))
    return seq


def write_fixture(root, **kwargs):
    folder = Path(root) / "sevir" / "processed"
    return (write_file(folder / "vil_training.h5", N_TRAIN, **kwargs),
            write_file(folder / "vil_testing.h5", N_TEST, **kwargs))


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


def test_cli_run(tmp_path):
    write_fixture(tmp_path / "data")
    code, err, record = run_persistence("sevir-13-12", tmp_path / "data", tmp_path / "out")
    assert code == 0, err
    assert record["status"] == "ok" and record["shape"] == [1, 384, 384]
    assert record["data"]["train"]["clips"] == N_TRAIN and record["data"]["test"]["clips"] == N_TEST
    assert record["test_sequences"] == N_TEST and set(record["metrics"]) >= {"mse", "mae", "rmse"}
    assert 0 < record["metrics"]["rmse"] < 255  # per-pixel on native VIL


def test_cli_data_check_and_exit_code(tmp_path, capsys):
    write_fixture(tmp_path)
    assert main(["data", "check", "sevir-13-12", "--data-root", str(tmp_path)]) == 0
    assert "test: 2 clips for sevir-13-12" in capsys.readouterr().out
    assert main(["data", "check", "sevir-13-12", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "vil_training.h5 not found" in err and "Traceback" not in err
