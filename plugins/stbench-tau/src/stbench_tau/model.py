"""TAU's model: the SimVP framework with the ``tau`` translator and the differential divergence loss."""
import torch
import torch.nn.functional as F

from stbench_simvp import SimVPModel, build_model


def differential_divergence(pred: torch.Tensor, true: torch.Tensor, tau: float = 0.1,
                            eps: float = 1e-12) -> torch.Tensor:
    """KL(softmax(diff(pred)/tau) || softmax(diff(true)/tau)) over each frame difference, averaged.

    ``diff`` is the change between consecutive frames, flattened over C*H*W; the mean runs
    over batch, frame pairs and positions (TAU's published form). Clips of two frames or
    fewer give zero, as in the reference implementation.
    """
    b, t = pred.shape[:2]
    if t <= 2:
        return pred.new_zeros(())
    gap_pred = (pred[:, 1:] - pred[:, :-1]).reshape(b, t - 1, -1)
    gap_true = (true[:, 1:] - true[:, :-1]).reshape(b, t - 1, -1)
    p = F.softmax(gap_pred / tau, dim=-1)
    q = F.softmax(gap_true / tau, dim=-1)
    return (p * torch.log(p / (q + eps) + eps)).mean()


class TAUModel(SimVPModel):
    """SimVP with temporal attention units; ``loss = MSE + alpha * differential divergence``."""

    def __init__(self, task, *, alpha: float = 0.1, kl_temperature: float = 0.1, **kwargs):
        kwargs.setdefault("translator", "tau")
        super().__init__(task, **kwargs)
        self.alpha, self.kl_temperature = float(alpha), float(kl_temperature)

    def loss(self, x, y, step):
        pred = self(x, y.shape[1])
        return F.mse_loss(pred, y) + self.alpha * differential_divergence(pred, y, self.kl_temperature)


def build_tau(task, hparams):
    return build_model(task, hparams, "tau", model_class=TAUModel, extra_keys=("alpha", "kl_temperature"))

