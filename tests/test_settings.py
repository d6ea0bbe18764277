"""The settings schema: resolution order, hparams_like, and checks of every plugin's declarations."""
import pytest

from stbench import DatasetSpec, ModelSpec, UserError
from stbench.config import TRAIN_DEFAULTS, check_declarations, check_override_keys, resolve


def _model(**hparams):
    return ModelSpec(name="m", family="recurrent-free", build=None, hparams=hparams)


def _dataset(name="ds", like=None, train=None):
    return DatasetSpec(name=name, shape=(1, 8, 8), open=None, max_length=20, layout="", hparams_like=like,
                       train_defaults=train or {})


def test_resolution_order_engine_dataset_model_command_line():
    model = _model(smoke={"default": {"width": 2, "lr": 0.5, "batch_size": 3}, "ds": {"width": 5, "epochs": 4}})
    dataset = _dataset(train={"smoke": {"lr": 0.25, "epochs": 7, "weight_decay": 0.1}})
    train, hparams, applied = resolve(model, dataset, "smoke", {"epochs": 9, "width": 6})
    assert train["eval_batch_size"] == TRAIN_DEFAULTS["smoke"]["eval_batch_size"]  # engine default
    assert train["weight_decay"] == 0.1  # dataset over engine
    assert train["lr"] == 0.5 and train["batch_size"] == 3  # model over dataset
    assert train["epochs"] == 9 and hparams["width"] == 6  # command line over all
    assert applied == {"epochs": 9, "width": 6}
    train, hparams, _ = resolve(model, dataset, "smoke", {})
    assert train["epochs"] == 4 and hparams == {"width": 5}  # the dataset entry over the model's default


def test_hparams_like_reads_another_datasets_declaration_under_its_own():
    model = _model(smoke={"default": {"width": 2, "depth": 1}, "mmnist": {"width": 8, "depth": 3}, "variant": {"depth": 5}})
    _, hparams, _ = resolve(model, _dataset("variant", like="mmnist"), "smoke", {})
    assert hparams == {"width": 8, "depth": 5}
    _, hparams, _ = resolve(model, _dataset("other"), "smoke", {})
    assert hparams == {"width": 2, "depth": 1}


def test_training_keys_of_a_declaration_are_their_own_section():
    model = _model(smoke={"default": {"width": 2, "lr": 0.1}})
    assert model.hparams == {"smoke": {"default": {"width": 2}}}
    assert model.train == {"smoke": {"default": {"lr": 0.1}}}
    assert model.known_keys() == {"width"}


@pytest.mark.parametrize("hparams,message", [
    ({"smoke": {"default": {"width": 2}, "ds": {"widht": 3}}}, "'widht' is neither"),
    ({"smoke": {"default": {"lr": "fast"}}}, "lr must be a number"),
    ({"smoke": {"default": {"batch_size": 0}}}, "batch_size must be a whole number >= 1"),
    ({"smok": {"default": {"width": 1}}}, "unknown profile 'smok'"),
])
def test_a_typo_in_declarations_is_one_line(hparams, message):
    with pytest.raises(UserError, match=message) as error:
        check_declarations(_model(**hparams))
    assert "\n" not in str(error.value)


def test_hyper_parameter_overrides_are_checked_against_the_declared_kind():
    model = _model(smoke={"default": {"width": 2, "ratio": 0.5, "flag": False, "kind": "a", "blocks": None}})
    overrides = check_override_keys({"width": 3, "ratio": 1}, [model])
    _, hparams, _ = resolve(model, _dataset(), "smoke", overrides)
    assert hparams["width"] == 3 and hparams["ratio"] == 1
    for key, value, message in (("width", 2.5, "width must be a whole number"), ("flag", 1, "flag must be true or false"),
                                ("kind", 3, "kind must be a word"), ("ratio", "x", "ratio must be a number")):
        with pytest.raises(UserError, match=message):
            resolve(model, _dataset(), "smoke", {key: value})
    _, hparams, _ = resolve(model, _dataset(), "smoke", {"blocks": 4})
    assert hparams["blocks"] == 4  # declared None: any value


def test_unknown_override_names_the_known_keys():
    with pytest.raises(UserError, match="known keys: .*width"):
        check_override_keys({"widht": 1}, [_model(smoke={"default": {"width": 2}})])


def test_yaml_text_numbers_are_numbers():
    _, _, _ = resolve(_model(smoke={"default": {}}), _dataset(), "smoke", {})
    train, _, _ = resolve(_model(smoke={"default": {}}), _dataset(), "smoke", check_override_keys({"lr": "1e-4"}, []))
    assert train["lr"] == 1e-4
