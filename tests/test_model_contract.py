"""Every installed model keeps the model contract (stbench.testing): no test to write for a new plugin."""
import pytest

from stbench import plugins
from stbench.testing import check_model


def test_every_plugin_loaded():
    plugins.registries()
    assert not plugins.failures, plugins.failures  # a typo in a configs.yaml fails registration, and so here


@pytest.mark.parametrize("name", sorted(plugins.models()))
def test_model_keeps_the_contract(name):
    assert check_model(plugins.get_model(name)) == ["contract-4-4", "contract-4-8", "contract-4-2"]
