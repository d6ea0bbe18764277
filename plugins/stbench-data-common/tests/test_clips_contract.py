"""Every clips class of every bundled dataset plugin is a stbench.Clips (the engine never probes datasets)."""
import importlib
import inspect
import pkgutil

import pytest
from torch.utils.data import Dataset

from stbench import Clips

PACKAGES = ["stbench_data_bair", "stbench_data_bridgedata", "stbench_data_cityscapes", "stbench_data_common",
            "stbench_data_custom", "stbench_data_enso", "stbench_data_human", "stbench_data_kinetics",
            "stbench_data_kitticaltech", "stbench_data_kth", "stbench_data_mmnist", "stbench_data_mnist_variants",
            "stbench_data_nuscenes", "stbench_data_robonet", "stbench_data_sevir", "stbench_data_taxibj",
            "stbench_data_traffic4cast", "stbench_data_ucfsports", "stbench_data_weather"]


def classes(package_name):
    package = importlib.import_module(package_name)
    modules = [package] + [importlib.import_module(f"{package_name}.{info.name}")
                           for info in pkgutil.iter_modules(package.__path__)]
    for module in modules:
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__:
                yield value


def dataset_like(cls):
    return issubclass(cls, Dataset) or ("__getitem__" in vars(cls) and "__len__" in vars(cls)
                                        and cls.__name__.endswith("Clips"))


@pytest.mark.parametrize("package_name", PACKAGES)
def test_datasets_are_clips(package_name):
    for cls in filter(dataset_like, classes(package_name)):
        assert issubclass(cls, Clips), f"{cls.__module__}.{cls.__name__} must subclass stbench.Clips"


def test_the_check_sees_the_clips_classes():
    found = {cls.__name__ for name in PACKAGES for cls in classes(name) if dataset_like(cls)}
    assert {"VideoClips", "WeatherClips", "SevirClips", "TaxiBJClips", "Traffic4CastClips", "EnsoClips",
            "MovingDigitsTrain", "FrameMajorClips", "GeneratedTestClips", "GeneratedClips", "FrameMajorColorClips",
            "CustomClips"} <= found
