"""TAU: the differential divergence regulariser, the loss, shapes and the published Params / FLOPs."""
import pytest
import torch
import torch.nn.functional as F

import stbench_tau
from stbench import Task
from stbench.config import TRAIN_KEYS
from stbench.models import count_params
from stbench.profiling import count_macs
from stbench_tau import TAUModel, differential_divergence


def tau_spec():
    specs = []
    stbench_tau.stbench_register_models(register=specs.append)
    (spec,) = specs
    return spec


SPEC = tau_spec()


def model_hparams(profile, dataset):
    return {k: v for k, v in SPEC.settings_for(profile, dataset).items() if k not in TRAIN_KEYS}


def test_regulariser_is_zero_when_prediction_equals_target():
    y = torch.rand(2, 5, 1, 8, 8)
    assert differential_divergence(y.clone(), y).item() == pytest.approx(0.0, abs=1e-6)


def test_regulariser_is_positive_when_motion_differs():
    y = torch.rand(2, 5, 1, 8, 8)
    assert differential_divergence(y.flip(1), y).item() > 1e-4


def test_regulariser_ignores_clips_without_two_differences():
    y = torch.rand(2, 2, 1, 8, 8)
    assert differential_divergence(torch.rand_like(y), y).item() == 0.0


def test_loss_is_mse_plus_alpha_times_divergence():
    torch.manual_seed(0)
    task = Task("toy", 4, 4, (1, 16, 16))
    model = TAUModel(task, alpha=0.5, hid_s=4, hid_t=16, n_s=2, n_t=2).eval()
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        pred = model(x, 4)
        expected = F.mse_loss(pred, y) + 0.5 * differential_divergence(pred, y, 0.1)
        assert model.loss(x, y, 0).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("t_out", [4, 9, 2], ids=["equal", "extended", "reduced"])
def test_output_shapes_for_every_protocol(t_out):
    task = Task("toy", 4, t_out, (2, 16, 16))
    model = SPEC.build(task, model_hparams("smoke", "toy")).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 4, 2, 16, 16), t_out).shape == (2, t_out, 2, 16, 16)


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    task = Task("toy", 4, 4, (1, 16, 16))
    model = SPEC.build(task, model_hparams("smoke", "toy"))
    x, y = torch.rand(4, 4, 1, 16, 16), torch.rand(4, 4, 1, 16, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        torch.manual_seed(1)
        return model.loss(x, y, 0)

    before = loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        assert loss().item() < before.item()


# Published Params (M) / FLOPs (G, MACs, one pass of T_in frames): USTEP (TPAMI 2025) Tables II
# (mmnist, human, weather), III (kth 10->20) and V (kitticaltech 10->1).
PUBLISHED = [
    ("mmnist", (1, 64, 64), 10, 44.7, 16.0),
    ("kth", (1, 128, 128), 10, 15.0, 73.8),
    ("human", (3, 256, 256), 4, 37.6, 182.0),
    ("weather", (1, 32, 64), 12, 12.2, 6.7),
    ("kitticaltech", (3, 128, 160), 10, 15.0, 92.5),
]


@pytest.mark.parametrize("dataset, shape, t_in, params_m, gmacs", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_paper_configs_match_published_params_and_flops(dataset, shape, t_in, params_m, gmacs):
    task = Task(dataset, t_in, t_in, shape)
    with torch.device("meta"):
        model = SPEC.build(task, model_hparams("paper", dataset))
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert count_macs(model, task) / 1e9 == pytest.approx(gmacs, rel=0.02)
