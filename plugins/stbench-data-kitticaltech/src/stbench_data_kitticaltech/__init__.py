"""stbench dataset plugin: KITTI -> Caltech Pedestrian (kitticaltech, OpenSTL) and KITTI alone (kitti, PredBench)."""
from stbench import hookimpl

from .kitti import SPEC as KITTI_SPEC
from .kitticaltech import SPEC as KITTICALTECH_SPEC


@hookimpl
def stbench_register_datasets(register):
    register(KITTICALTECH_SPEC)
    register(KITTI_SPEC)
