"""The Nino3.4 correlation skill for ENSO forecasts, as PredBench (and Earthformer) score it.

Per clip and predicted month, the SST averaged over the Nino3.4 box (5S-5N, 170W-120W) is smoothed
by a 3-month running mean; for each lead (window of months l..l+2) the Pearson correlation between
predicted and true indices is taken over all clips of the set. ``nino34`` is its mean over leads
(PredBench's C-Nino3.4-M), ``nino34_weighted`` the competition weighting (C-Nino3.4-WM) and
``rmse_nino34`` the index RMSE averaged over leads (named so that the leaderboard's rule, direction
from the name before the first '_', reads it as lower-is-better).
"""
import torch

from stbench import Metric, MetricContext, NotAvailable, UserError

from .options import array_option, latitudes

WINDOW = 3
BOX_LATITUDES = (-5.0, 5.0)
BOX_LONGITUDES = (190.0, 240.0)  # degrees east
# The ICAR-ENSO SST grid PredBench uses: 5-degree cells, 55S-60N, 95E-330E (24 x 48).
ICAR_SHAPE = (24, 48)
ICAR_LATITUDES = [-55.0 + 5 * i for i in range(24)]
ICAR_LONGITUDES = [95.0 + 5 * j for j in range(48)]


def lead_weights(leads: int) -> torch.Tensor:
    """The Tianchi/ICAR competition weights ``a_l * ln(l)`` for leads ``l = 1 .. leads``."""
    a = ([1.5] * 4 + [2.0] * 7 + [3.0] * 7 + [4.0] * max(leads - 18, 0))[:leads]
    return torch.tensor(a, dtype=torch.float64) * torch.log(torch.arange(1, leads + 1, dtype=torch.float64))


class Nino34(Metric):
    """Streams, per lead, the sums that a Pearson correlation and an RMSE need over all clips.

    Grid: ``options['latitudes']`` / ``options['longitudes']`` (degrees; longitudes east, any
    convention), else the ICAR-ENSO grid for 24x48 frames. SST channel: ``options['nino34_channel']``
    (default 0).
    """

    unavailable_reason = None

    def __init__(self, name: str, context: MetricContext):
        self.name, self.context = name, context
        self.channel = int(context.options.get("nino34_channel", 0))
        self.reset()

    def reset(self):
        self.sums = None  # [6, leads]: sums of p, o, p*p, o*o, p*o, (p-o)^2 over clips (p predicted, o observed)
        self.count = 0

    def box(self, rows, cols):
        """Boolean masks of the grid rows and columns inside the Nino3.4 box, or a reason why not."""
        lons = array_option(self.context.options, "longitudes")
        if lons is None and "latitudes" not in self.context.options and (rows, cols) == ICAR_SHAPE:
            lats = torch.tensor(ICAR_LATITUDES, dtype=torch.float64)
            lons = torch.tensor(ICAR_LONGITUDES, dtype=torch.float64)
        elif lons is None:
            return None, None, (f"nino34 needs the grid of the {rows}x{cols} frames: give the metric options "
                                "'latitudes' and 'longitudes' (degrees)")
        else:
            lats = latitudes(self.context.options, rows)
            if lons.numel() != cols:
                raise UserError(f"metric option 'longitudes' has {lons.numel()} values but the frames have "
                                f"{cols} columns")
            lons = lons.flatten() % 360
        in_rows = (lats >= BOX_LATITUDES[0]) & (lats <= BOX_LATITUDES[1])
        in_cols = (lons >= BOX_LONGITUDES[0]) & (lons <= BOX_LONGITUDES[1])
        if not in_rows.any() or not in_cols.any():
            return None, None, "nino34: the grid does not cover the Nino3.4 box (5S-5N, 190E-240E)"
        return in_rows, in_cols, None

    def index(self, sst, rows, cols):
        """``[B, T, H, W]`` -> 3-month running mean of the box average, ``[B, T - 2]``."""
        boxed = sst[:, :, rows.to(sst.device)][:, :, :, cols.to(sst.device)]
        return boxed.mean(dim=(2, 3)).unfold(1, WINDOW, 1).mean(dim=2)

    def update(self, pred, true):
        if pred.shape != true.shape or pred.ndim != 5:
            raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and true {tuple(true.shape)} "
                             "must both be [B, T, C, H, W]")
        if self.unavailable_reason:
            return
        b, t, c, h, w = pred.shape
        rows, cols, self.unavailable_reason = self.box(h, w)
        if self.unavailable_reason is None and t < WINDOW:
            self.unavailable_reason = f"nino34 needs at least {WINDOW} predicted months; the task predicts {t}"
        if self.unavailable_reason:
            return
        p = self.index(pred[:, :, self.channel].double(), rows, cols)
        o = self.index(true[:, :, self.channel].double(), rows, cols)
        sums = torch.stack([p, o, p * p, o * o, p * o, (p - o) ** 2]).sum(dim=1).cpu()
        self.sums = sums if self.sums is None else self.sums + sums
        self.count += b

    def _per_lead(self):
        if self.sums is None:
            raise ValueError(f"{self.name}: no data was scored")
        n = self.count
        sp, so, spp, soo, spo, sdd = self.sums
        covariance = spo - sp * so / n
        spread = ((spp - sp * sp / n) * (soo - so * so / n)).clamp(min=0).sqrt()
        return covariance / (spread + 1e-6), (sdd / n).sqrt()  # PredBench's 1e-6 guard

    def compute(self):
        if self.unavailable_reason:
            return {self.name: NotAvailable(self.unavailable_reason)}
        correlation, rmse = self._per_lead()
        leads = correlation.numel()
        return {self.name: float(correlation.mean()),
                f"{self.name}_weighted": float((lead_weights(leads) * correlation).sum() / leads),
                f"rmse_{self.name}": float(rmse.mean())}

    def per_frame(self):
        """Correlation per lead: entry ``l`` scores the window of predicted months ``l .. l+2``."""
        if self.unavailable_reason:
            return None
        return {self.name: [float(v) for v in self._per_lead()[0]]}


def build_nino34(context):
    return Nino34("nino34", context)

