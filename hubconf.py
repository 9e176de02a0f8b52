"""torch.hub entry points of reid-modelzoo.

    model = torch.hub.load("<owner>/reid-modelzoo", "osnet_x1_0", pretrained=True, dataset="market1501")
    model = torch.hub.load("/path/to/checkout", "resnet50_fc512", source="local", pretrained=True)

There is one entry point per model name of the manifest, canonical names and
torchreid aliases alike; each has the signature
``(pretrained=False, dataset=<its first checkpoint>, device=None, **kwargs)``
and returns what ``modelzoo.get`` returns.  Helpers are imported under ``_``
names so that ``torch.hub.list`` shows only models.
"""

dependencies = ["torch", "torchvision", "numpy", "PIL", "requests", "filelock", "tqdm", "safetensors"]

import modelzoo as _modelzoo  # noqa: E402
from modelzoo import manifest as _manifest  # noqa: E402
from modelzoo.table import describe_result as _describe_result  # noqa: E402

_ZOO_NAMES = {"torchreid": "torchreid", "fastreid": "fast-reid"}


def _entry_point(name: str, record):
    default_dataset = "market1501" if "market1501" in record.checkpoints else next(iter(record.checkpoints))

    def entry(pretrained: bool = False, dataset: str = default_dataset, device=None, **kwargs):
        return _modelzoo.get(record.name, dataset, pretrained=pretrained, device=device, **kwargs)

    published = [
        f"    {c.name}: " + ", ".join(f"{r.test_set} {_describe_result(r)}" for r in c.results)
        if c.results else f"    {c.name}: ImageNet weights"
        for c in record.checkpoints.values()
    ]
    alias_note = f" (alias of {record.name})" if name != record.name else ""
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = "\n".join(
        [
            f"{name}{alias_note}: {_ZOO_NAMES[record.zoo]}'s {record.name}, input {record.input_size[0]}x{record.input_size[1]}, "
            f"{record.feature_dim}-d embedding in eval mode.",
            "",
            "Args:",
            "    pretrained: load the trained re-ID weights (downloaded, verified and cached).",
            f"    dataset: which checkpoint: {', '.join(record.checkpoints)} (default {default_dataset}).",
            "    device: None (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or a torch.device.",
            "    **kwargs: num_classes=K (replace the classifier), progress=False.",
            "",
            "Checkpoints and published results:",
            *published,
        ]
    )
    return entry


def _register_all(namespace: dict) -> None:
    for _record in _manifest.models().values():
        for _name in (_record.name, *_record.aliases):
            namespace[_name] = _entry_point(_name, _record)


_register_all(globals())
