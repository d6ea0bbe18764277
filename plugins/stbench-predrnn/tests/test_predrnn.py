"""What sets the PredRNN family apart: v2's decoupling loss and curriculum, PredRNN++'s highway, shape checks."""
import pytest
import torch

from stbench import Task, UserError
from stbench.profiling import count_macs
from stbench_convlstm import ReverseScheduledSampling, ScheduledSampling
from stbench_predrnn import PredRNN, PredRNNpp, PredRNNv2

TASK = Task("toy", 3, 3, (1, 16, 16))
ARCH = dict(num_hidden=[8, 8], filter_size=3, patch_size=4, layer_norm=False)
LATE = 10_000


def v2(decouple_beta=0.1):
    torch.manual_seed(0)
    return PredRNNv2(TASK, **ARCH, sampling=ReverseScheduledSampling(step_1=1, step_2=2, exp_alpha=1),
                     decouple_beta=decouple_beta)


def test_v2_inference_is_predrnn_inference():
    """The adapter serves the decoupling loss only: same cells, same predictions, same MACs as PredRNN."""
    model = v2().eval()
    predrnn = PredRNN(TASK, **ARCH, sampling=ScheduledSampling()).eval()
    missing, unexpected = predrnn.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected == ["adapter.weight"]
    x = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x, 5), predrnn(x, 5))
    assert count_macs(model, TASK) == count_macs(predrnn, TASK)


def test_v2_loss_adds_the_weighted_decoupling_term():
    x, y = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    mse, weighted, full = (v2(beta).loss(x, y, LATE).item() for beta in (0.0, 0.1, 1.0))
    decoupling = full - mse  # mean |cos| of the adapted C and M increments
    assert 0 < decoupling <= 1
    assert weighted == pytest.approx(mse + 0.1 * decoupling, rel=1e-5)


def test_v2_decoupling_term_reaches_the_adapter_only_through_the_loss():
    model = v2(decouple_beta=1.0)
    model.loss(torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16), LATE).backward()
    assert model.adapter.weight.grad.abs().sum() > 0


def test_zigzag_models_need_one_width_for_every_layer():
    with pytest.raises(UserError, match="same width"):
        PredRNN(TASK, **dict(ARCH, num_hidden=[8, 16]), sampling=ScheduledSampling())


def test_predrnnpp_needs_two_layers_for_its_highway():
    with pytest.raises(UserError, match="at least two layers"):
        PredRNNpp(TASK, **dict(ARCH, num_hidden=[8]), sampling=ScheduledSampling())


def test_highway_weights_start_small():
    model = PredRNNpp(TASK, **ARCH, sampling=ScheduledSampling())
    for conv in (model.highway.conv_x, model.highway.conv_z):
        assert conv.weight.abs().max() <= 1e-3
