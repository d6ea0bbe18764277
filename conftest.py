"""Settings for the whole test session (tests/ and every plugin's tests/)."""
import os


def pytest_configure(config):
    """``make test`` runs the suite on worker processes (pytest-xdist), one per core: each worker, and every
    process a test starts, gets one torch thread, so the workers do not oversubscribe the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = "1"
        import torch

        torch.set_num_threads(1)
