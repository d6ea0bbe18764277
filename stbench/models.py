"""The model contract: STModel (one task), MultiTaskModel (joint training) and ModelSpec."""
from abc import ABCMeta, abstractmethod
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import PROFILES, TRAIN_KEYS  # noqa: F401 - PROFILES is part of this module's API
from .specs import FAMILIES, ModelSpec, load_yaml  # noqa: F401 - declared torch-free in specs, re-exported here


class STModel(nn.Module, metaclass=ABCMeta):
    """A spatio-temporal predictor: ``[B, T_in, C, H, W] -> [B, t_out, C, H, W]``.

    Subclasses implement :meth:`forward` (abstract: a model without it cannot be constructed). Every other hook has a default here, and the trainer
    calls each of them on every model, so a model overrides only what it needs:

    - :meth:`loss` (default: MSE of ``forward`` against the target). Recurrent models override it
      with scheduled sampling, TAU adds its divergence term, and so on.
    - :meth:`optimizer_param_groups` (default: ``None``, every trainable parameter goes to the run's
      optimizer).
    - :meth:`on_epoch_start` (default: nothing), called before every training epoch.
    - :meth:`split_batch` (default: the batch whole), the pieces of a training batch that each get an
      optimizer step of their own (DMVFN steps once per frame triple, as its reference does).
    - :meth:`record_notes` (default: none), facts for the run record and the leaderboard's notes.
    - :meth:`stage_losses` with ``update_stages`` (default: none), for a model that updates its
      parameters in turns within one step (a GAN: its discriminators, then its generator).

    ``unused_parameters`` (default ``False``): set it when some trainable parameters get no gradient
    in a training step (a reference design kept for its checkpoints); DistributedDataParallel then
    looks for them each step instead of waiting for their gradients forever.

    ``compile_targets`` (default: the whole model): the submodules ``--compile on`` compiles; a recurrent model
    names its cells.

    ``stochastic`` (default ``False``): set it when ``forward`` in eval mode samples (latent variables,
    diffusion noise) from torch's global generator. Evaluation then draws ``--samples K`` predictions
    per test clip (the spec's ``samples`` by default), each under a recorded seed, and reports best-of-K,
    the mean over samples and their spread.
    """

    unused_parameters: bool = False
    # Names of the update stages of one training step, in order (empty: one update on ``loss``). See stage_losses.
    update_stages: Tuple[str, ...] = ()
    # A stochastic model draws latent variables or noise in ``forward`` from torch's global random
    # generator (the evaluator seeds it per sample); evaluation then draws K predictions per clip.
    stochastic: bool = False
    # What ``--compile on`` compiles, by submodule name (empty: the whole model). A recurrent model names its
    # cell(s): the unrolled loop over frames stays Python and only the cell's step is fused and reused.
    compile_targets: Sequence[str] = ()

    @abstractmethod
    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        """The prediction ``[B, t_out, C, H, W]`` for inputs ``x`` ``[B, T_in, C, H, W]``, any ``t_out``."""

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Training loss for one batch (or one piece of it, see :meth:`split_batch`); ``step`` counts
        training batches from 0 (optimizer steps, unless a batch is split)."""
        return F.mse_loss(checked_prediction(self(x, y.shape[1]), y), y)

    def split_batch(self, x: torch.Tensor, y: torch.Tensor) -> Sequence[Tuple[torch.Tensor, torch.Tensor]]:
        """The ``(x, y)`` pieces of one training batch, in order; the trainer computes :meth:`loss` of each and
        takes an optimizer step after each one (default: the batch itself, one step).

        For references that step several times per batch (DMVFN: once per frame triple of the clip). The
        learning-rate schedule still advances once per batch, ``step`` counts batches, and the logged loss
        of a batch is the mean over its pieces.
        """
        return [(x, y)]

    def optimizer_param_groups(self, train_cfg: Mapping[str, Any]) -> Optional[List[Dict[str, Any]]]:
        """Parameter groups for the optimizer, or ``None`` for every trainable parameter in one group.

        A group may name its own ``optimizer`` (``adam``, ``adamw`` or ``sgd``) with its own
        ``lr`` / ``weight_decay`` (UniSTD trains its ranks with SGD as the paper does); the
        trainer gives such a group an optimizer of its own, which the schedule does not drive.
        """
        return None

    def stage_losses(self, x: torch.Tensor, y: torch.Tensor, step: int) -> Iterator[Tuple[str, torch.Tensor]]:
        """The losses of one training step in turns, for a model that declares ``update_stages``.

        Yields ``(stage, loss)`` once per name of ``update_stages``, in that order. The trainer
        back-propagates each loss and steps only the parameters of the optimizer groups whose ``stage``
        is that name (every group returned by :meth:`optimizer_param_groups` must name one) before it
        asks for the next loss, so a later stage sees the weights an earlier one changed: a GAN yields
        its discriminator loss (on detached fakes), then its generator loss through the updated
        discriminators, from one forward pass of the generator. :meth:`loss` stays the sum of the
        stage losses at the current weights (what one joint update would minimise). Such a model trains
        on one process (DistributedDataParallel synchronises one backward per forward).
        """
        yield "", self.loss(x, y, step)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before training epoch ``epoch`` (0-based), also after a resume."""

    def record_notes(self) -> Dict[str, Any]:
        """Facts about this built model for the run record (e.g. which pretrained weights it holds)."""
        return {}


def checked_prediction(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``pred``, or a ValueError saying how its shape differs from the targets' (never a silent broadcast)."""
    if pred.shape != y.shape:
        raise ValueError(f"forward(x, t_out) returned {tuple(pred.shape)} for targets {tuple(y.shape)}; "
                         "it must return [B, t_out, C, H, W]")
    return pred


class MultiTaskModel(STModel):
    """One model trained on several tasks at once (``stbench run --joint``).

    ``forward(x, t_out, task)`` and ``loss(x, y, step, task)`` take the task's name. A
    :class:`ModelSpec` that declares ``build_joint`` returns one of these from it; the trainer
    passes each batch's task, and evaluation and profiling see one task at a time through
    :meth:`for_task`.
    """

    @abstractmethod
    def forward(self, x: torch.Tensor, t_out: int, task: Optional[str] = None) -> torch.Tensor:
        """The prediction ``[B, t_out, C, H, W]`` for inputs of ``task`` (a task name)."""

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int, task: Optional[str] = None) -> torch.Tensor:
        return F.mse_loss(checked_prediction(self(x, y.shape[1], task), y), y)

    def for_task(self, task: str) -> "TaskView":
        """A single-task :class:`STModel` sharing every parameter with this model."""
        return TaskView(self, str(task))


class TaskView(STModel):
    """One task of a :class:`MultiTaskModel`, seen as a plain :class:`STModel`."""

    def __init__(self, model: MultiTaskModel, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        return self.model(x, t_out, task=self.task)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.model.loss(x, y, step, task=self.task)

    def record_notes(self) -> Dict[str, Any]:
        return self.model.record_notes()





def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
