"""``evaluate()``: a model on a dataset's query/gallery split, under the Market-1501 protocol."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelzoo.errors import UnknownDatasetError

logger = logging.getLogger(__name__)

REPORTED_RANKS = (1, 5, 10, 20)


@dataclass(frozen=True)
class EvaluationResult:
    """Measured accuracy of one model on one dataset; percentages like the zoo table."""

    model: str
    checkpoint: str | None  # "name.key", None for a model without zoo weights
    dataset: str
    rank1: float
    rank5: float
    rank10: float
    rank20: float
    mAP: float
    mINP: float
    cmc: tuple[float, ...]  # in %, ranks 1..len(cmc)
    num_query: int
    num_gallery: int
    num_valid_queries: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)

    def summary(self) -> str:
        """A few lines for a terminal."""
        ranks = "  ".join(f"R{k} {getattr(self, f'rank{k}'):.1f}" for k in REPORTED_RANKS)
        return (
            f"{self.checkpoint or self.model} on {self.dataset}: {ranks}  mAP {self.mAP:.1f}  mINP {self.mINP:.1f}\n"
            f"  {self.num_query} queries ({self.num_valid_queries} valid), {self.num_gallery} gallery images; "
            f"features {self.timings.get('features', 0):.1f} s, ranking {self.timings.get('ranking', 0):.1f} s"
        )


def evaluate(
    model_or_name: nn.Module | str,
    dataset: str,
    data_root: str | Path,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    rerank: bool = False,
    aqe: bool = False,
    flip: bool = False,
    metric: str | None = None,
    max_rank: int = 50,
    precision: str = "fp32",
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate a re-ID model on the query/gallery split of ``dataset``.

    Args:
        model_or_name: a model from ``modelzoo.get`` / ``build``, or a name:
            ``"osnet_x1_0"`` takes the checkpoint trained on ``dataset``,
            ``"osnet_ibn_x1_0.market1501"`` a given one (cross-domain).
        dataset: ``market1501``, ``dukemtmcreid`` or ``msmt17`` (short names work).
        data_root: torchreid's data folder, or the dataset's own folder.
        device: where features are computed (None: CUDA when available).
        batch_size, num_workers: feature extraction batching and decoding workers.
        rerank: apply k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3), straight
            from the features in bounded memory (not used by the published numbers).
        aqe: average query expansion of every query and gallery feature first
            (fast-reid's ``TEST.AQE``: k 5, alpha 3; not used by the published numbers).
        flip: average each embedding with that of the mirrored image
            (fast-reid's ``TEST.FLIP``; twice the extraction time; not used by
            the published numbers).
        metric: "euclidean" (squared) or "cosine"; default: the checkpoint's.
        max_rank: length of the CMC curve.
        precision: "fp32" (published setting) or opt-in "bf16"/"fp16".
        progress: progress bars on a terminal.

    Under ``torchrun`` every rank calls this alike: the images are split
    across the ranks (each on GPU ``LOCAL_RANK``, or the CPU), the features
    gathered in order, and every rank returns the same result.  With ``rerank``
    or ``aqe`` on a CUDA device, their matrix products run on that GPU.
    """
    from modelzoo import datasets, manifest
    from modelzoo.evaluation.distributed import rank_device, world_size

    dataset = manifest.normalize_dataset(dataset)
    device = rank_device(device)  # under torchrun: this rank's GPU
    model = _resolve_model(model_or_name, dataset, device)
    checkpoint = getattr(model, "modelzoo_checkpoint", None)
    metric = metric or (checkpoint.distance if checkpoint else "euclidean")
    split = datasets.read_dataset(dataset, data_root)
    started = time.perf_counter()
    query, gallery = _features(model, split, device, batch_size, num_workers, precision, progress, flip)
    extracted = time.perf_counter()
    ranking = _rank(query, gallery, split, metric, max_rank, rerank, aqe, device)
    finished = time.perf_counter()
    return _result(
        model,
        dataset,
        split,
        ranking,
        timings={"features": extracted - started, "ranking": finished - extracted},
        settings={
            "metric": metric,
            "rerank": rerank,
            "aqe": aqe,
            "flip": flip,
            "max_rank": max_rank,
            "batch_size": batch_size,
            "precision": precision,
            "device": str(device),
            "processes": world_size(),
            "data_root": str(split.root),
            "dataset_variant": getattr(split, "variant", dataset),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    )


def _resolve_model(model_or_name: nn.Module | str, dataset: str, device) -> nn.Module:
    if not isinstance(model_or_name, str):
        return model_or_name
    from modelzoo import hub, manifest

    name = model_or_name
    if "." not in name:
        record = manifest.resolve_name(name)
        if dataset not in record.checkpoints:
            raise UnknownDatasetError(
                f"{record.name} has no checkpoint trained on {dataset}; name one of its checkpoints for a "
                f"cross-domain evaluation, e.g. '{record.name}.{next(iter(record.checkpoints), 'market1501')}'"
            )
        name = f"{record.name}.{dataset}"
    return hub.get(name, device=device)


def _features(model, split, device, batch_size, num_workers, precision, progress, flip):
    """Query and gallery features from one extraction pass (one BatchNorm fold, one loader).

    Under ``torchrun`` the images are split across the ranks and every rank
    gets all the features, in order (:mod:`modelzoo.evaluation.distributed`).
    """
    from modelzoo.evaluation.distributed import extract_features_distributed

    paths = [r.path for r in split.query] + [r.path for r in split.gallery]
    features = extract_features_distributed(
        model, paths, batch_size=batch_size, num_workers=num_workers, device=device, precision=precision,
        flip=flip, progress=progress, description="query + gallery")
    return features[: len(split.query)], features[len(split.query):]


def _ids(records) -> tuple[torch.Tensor, torch.Tensor]:
    pids = torch.tensor([r.pid for r in records], dtype=torch.int64)
    camids = torch.tensor([r.camid for r in records], dtype=torch.int64)
    return pids, camids


def _rank(query: torch.Tensor, gallery: torch.Tensor, split, metric: str, max_rank: int, rerank: bool, aqe: bool,
          device: torch.device):
    from modelzoo.evaluation.query_expansion import average_query_expansion
    from modelzoo.evaluation.rank import evaluate_from_features

    q_pids, q_camids = _ids(split.query)
    g_pids, g_camids = _ids(split.gallery)
    if (rerank or aqe) and device.type == "cuda":  # their (q + g) x (q + g) products: on the GPU
        query, gallery = query.to(device), gallery.to(device)
    if aqe:
        query, gallery = average_query_expansion(query, gallery)
    return evaluate_from_features(
        query, gallery, q_pids.numpy(), g_pids.numpy(), q_camids.numpy(), g_camids.numpy(),
        metric=metric, max_rank=max_rank, rerank=rerank,
    )


def _result(model, dataset: str, split, ranking, timings: dict, settings: dict) -> EvaluationResult:
    record = getattr(model, "modelzoo_record", None)
    checkpoint = getattr(model, "modelzoo_checkpoint", None)
    cmc = [100.0 * float(v) for v in ranking.cmc]

    def at(rank: int) -> float:  # a gallery shorter than the rank: the curve has reached its end
        return cmc[min(rank, len(cmc)) - 1]

    return EvaluationResult(
        model=record.name if record else type(model).__name__,
        checkpoint=checkpoint.name if checkpoint else None,
        dataset=dataset,
        rank1=at(1),
        rank5=at(5),
        rank10=at(10),
        rank20=at(20),
        mAP=100.0 * float(ranking.mAP),
        mINP=100.0 * float(ranking.mINP),
        cmc=tuple(cmc),
        num_query=len(split.query),
        num_gallery=len(split.gallery),
        num_valid_queries=int(ranking.num_valid_queries),
        timings=timings,
        settings=settings,
    )
