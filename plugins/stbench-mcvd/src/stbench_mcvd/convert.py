"""Convert the MCVD authors' checkpoint container into a plain state dict that ``stbench eval`` reads:

    python -m stbench_mcvd.convert checkpoint_250000.pt mcvd_smmnist.pth

The authors save ``[model, optimizer, epoch, step, EMA shadow]``; the file written holds the model's
weights with the EMA shadow applied (what their loader samples with) and nothing else.
"""
import sys

import torch

from stbench import UserError

from .model import read_reference_checkpoint


def convert(source, target) -> int:
    """Write ``source``'s EMA weights to ``target`` as a state dict; the number of tensors written."""
    checkpoint = read_reference_checkpoint(source)
    torch.save(checkpoint.state, target)
    return len(checkpoint.state)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m stbench_mcvd.convert AUTHORS_CHECKPOINT.pt OUTPUT.pth", file=sys.stderr)
        return 2
    try:
        count = convert(*argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {count} tensors to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
