"""Architecture builders whose state dicts match torchreid's and fast-reid's checkpoints exactly.

Every builder has the signature ``builder(num_classes: int, loss: str = "softmax",
**kwargs) -> nn.Module``:

* ``num_classes``: the identities the classifier predicts; 0 builds an
  embedding-only model (no classifier keys; the embedding in train mode too);
* ``loss``: ``"softmax"`` (train mode returns the logits) or ``"triplet"``
  (train mode returns the logits and the embedding);
* ``**kwargs``: torchreid's ``use_gpu`` and ``pretrained=False`` are accepted
  and ignored; the options a builder declares are used (fast-reid's
  ``era`` and ``pool``, see :mod:`modelzoo.architectures.fastreid`).
  ``pretrained=True`` raises TypeError (builders never load weights, so
  nobody silently gets random ones: use ``modelzoo.get``), and so does any
  other argument.

The module it returns is randomly initialised and gives the embedding in
eval mode, like torchreid's.
"""

from modelzoo.architectures._registry import Builder, builders, register

__all__ = ["Builder", "builders", "register"]
