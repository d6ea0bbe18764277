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


def test_a_model_without_forward_fails_when_constructed():
    from stbench import MultiTaskModel, STModel

    class NoForward(STModel):
        pass

    class NoJointForward(MultiTaskModel):
        pass

    for cls in (NoForward, NoJointForward):
        with pytest.raises(TypeError, match=f"abstract class {cls.__name__} .*forward"):
            cls()
