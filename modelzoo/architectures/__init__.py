"""Architecture builders whose state dicts match torchreid's checkpoints exactly.

Every builder has the signature ``builder(num_classes: int, loss: str = "softmax",
**kwargs) -> nn.Module``.  The module it returns gives the embedding in eval
mode and the logits in train mode, like torchreid's.
"""

from modelzoo.architectures._registry import Builder, builders, register

__all__ = ["Builder", "builders", "register"]
