import pytest

from stbench import plugins
from stbench.cli import main
from stbench.errors import UserError


def test_entry_point_plugin_registers_models_and_datasets(use_plugins, capsys):
    use_plugins("plugin_fixture")
    assert plugins.get_model("tiny").plugin == "testplug"
    assert plugins.get_dataset("toy").plugin == "testplug"
    assert main(["list", "models"]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("testplug"))
    assert "0.3" in line and "stbench_register_models" in line and "stbench_register_datasets" in line


def test_stbench_plugins_restricts_what_loads(use_plugins):
    use_plugins("plugin_fixture", only="testplug")
    assert set(plugins.models()) == {"tiny", "tinyjoint", "tinynoisy"}
    assert "mmnist" not in plugins.datasets()
    assert "mse" in plugins.metrics()  # the core's own metrics always load


def test_broken_plugin_is_reported_and_skipped(use_plugins, capsys):
    use_plugins("plugin_fixture", "broken_fixture", only="testplug,broken,baselines")
    assert "tiny" in plugins.models() and "persistence" in plugins.models()
    assert any(name == "broken" and "broken on purpose" in error for name, error in plugins.failures)
    assert main(["plugins"]) == 0
    assert "broken" in capsys.readouterr().out


def test_duplicate_name_names_both_plugins(use_plugins, capsys):
    use_plugins("broken_fixture", only="dupe,baselines")
    with pytest.raises(UserError, match="registered twice.*'baselines'.*'dupe'|registered twice.*'dupe'.*'baselines'"):
        plugins.models()
    plugins.reset()
    assert main(["list", "models"]) == 2
    assert "registered twice" in capsys.readouterr().err


def test_unknown_names_suggest_the_nearest(use_plugins):
    use_plugins()
    with pytest.raises(UserError, match="did you mean persistence"):
        plugins.get_model("persistance")
    with pytest.raises(UserError, match="did you mean mmnist"):
        plugins.resolve_task("mnist-10-10")
    with pytest.raises(UserError, match="did you mean ssim"):
        plugins.get_metric("ssmi")


def test_same_plugin_name_from_two_distributions_is_an_error(use_plugins, capsys):
    use_plugins("plugin_fixture", "samename_fixture", only="testplug")
    assert main(["list", "models"]) == 2
    err = capsys.readouterr().err
    assert "'testplug' is used by two distributions" in err
    assert "stbench-testplug" in err.replace("_", "-") and "stbench-samename" in err.replace("_", "-")


def test_hooks_run_through_pluggy_in_its_documented_order_each_registration_attributed(use_plugins):
    from stbench import MetricSpec, hookimpl

    use_plugins(only="baselines")
    plugins.load_plugins()
    calls = []

    def metric(name):
        return MetricSpec(name=name, build=lambda context: None)

    class Early:
        @hookimpl(tryfirst=True)
        def stbench_register_metrics(self, register):
            calls.append("early")
            register(metric("early_metric"))
            raise RuntimeError("early fails after one registration")

    class Plain:
        @hookimpl
        def stbench_register_metrics(self, register):
            calls.append("plain")
            register(metric("plain_metric"))

    class Late:
        @hookimpl(trylast=True)
        def stbench_register_metrics(self, register):
            calls.append("late")
            register(metric("late_metric"))

    for name, plugin in (("late", Late()), ("early", Early()), ("plain", Plain())):
        plugins.pm.register(plugin, name=name)
    found = plugins.metrics()
    assert calls == ["early", "plain", "late"]  # tryfirst first, trylast last, whatever the registration order
    assert {name: found[f"{name}_metric"].plugin for name in ("early", "plain", "late")} == {
        "early": "early", "plain": "plain", "late": "late"}
    assert found["mse"].plugin == "stbench.metrics.pixel"
    assert ("early", "stbench_register_metrics: RuntimeError: early fails after one registration") in plugins.failures


def test_a_name_registered_twice_through_pluggy_names_both_plugins(use_plugins):
    from stbench import MetricSpec, hookimpl

    use_plugins(only="baselines")
    plugins.load_plugins()

    class Late:
        @hookimpl(trylast=True)
        def stbench_register_metrics(self, register):
            register(MetricSpec(name="mse", build=lambda context: None))

    plugins.pm.register(Late(), name="late")
    with pytest.raises(UserError, match="metric 'mse' is registered twice: by plugin 'stbench.metrics.pixel' "
                                        "and by plugin 'late'"):
        plugins.metrics()
