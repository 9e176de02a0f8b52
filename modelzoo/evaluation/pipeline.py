"""``evaluate()``: a model on a dataset's query/gallery split, under the Market-1501 protocol.

VehicleID and VERI-Wild are evaluated at one test size (``split=``); VehicleID's
random gallery is drawn ``trials`` times (seeded) and the metrics averaged,
with one feature extraction for all the trials.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelzoo import manifest
from modelzoo.errors import UnknownCheckpointError
from modelzoo.inference.distributed import ProcessGroup
from modelzoo.inference.precision import check_precision
from modelzoo.inference.runtimes import Runtime
from modelzoo.models import Mirrors, ModelInfo, get, model_info
from modelzoo.names import canonical_dataset

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
    split: str | None = None  # the test size of VehicleID / VERI-Wild

    @property
    def test_set(self) -> str:
        """The test dataset, with its split: ``"market1501"``, ``"vehicleid (small)"``."""
        return self.dataset if self.split is None else f"{self.dataset} ({self.split})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)

    def summary(self) -> str:
        """A few lines for a terminal."""
        ranks = "  ".join(f"R{k} {getattr(self, f'rank{k}'):.1f}" for k in REPORTED_RANKS)
        return (
            f"{self.checkpoint or self.model} on {self.test_set}: {ranks}  mAP {self.mAP:.1f}  mINP {self.mINP:.1f}\n"
            f"  {self.num_query} queries ({self.num_valid_queries} valid), {self.num_gallery} gallery images; "
            f"features {self.timings.get('features', 0):.1f} s, ranking {self.timings.get('ranking', 0):.1f} s"
        )


def evaluate(
    model_or_name: nn.Module | str,
    dataset: str,
    data_root: str | Path,
    *,
    split: str | None = None,
    trials: int | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    rerank: bool = False,
    aqe: bool = False,
    flip: bool = False,
    metric: str | None = None,
    max_rank: int = 50,
    precision: str = "fp32",
    backend: str | Runtime = "torch",
    progress: bool = True,
    distributed: bool = False,
    process_group: ProcessGroup | None = None,
    cache_dir: str | Path | None = None,
    mirrors: Mirrors = None,
    offline: bool | None = None,
) -> EvaluationResult:
    """Evaluate a re-ID model on the query/gallery split of ``dataset``.

    Args:
        model_or_name: a model from ``modelzoo.get`` / ``build``, or a name:
            ``"osnet_x1_0"`` takes the checkpoint trained on ``dataset``,
            ``"osnet_ibn_x1_0.market1501"`` a given one (cross-domain).
        dataset: ``market1501``, ``dukemtmcreid``, ``msmt17``, ``veri``,
            ``vehicleid`` or ``veriwild`` (short names work).
        data_root: torchreid's (or fast-reid's) data folder, or the dataset's own folder.
        split: the test size of ``vehicleid`` and ``veriwild``: ``small``,
            ``medium`` or ``large`` (required there, refused elsewhere).
        trials: how many seeded random galleries of ``vehicleid`` to average
            over (default 10; trial t is drawn with seed t); refused elsewhere.
            fast-reid's own code draws one unseeded gallery per run.
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
        precision: "fp32" (published setting) or opt-in "bf16" / "fp16" where
            the hardware runs it natively.
        backend: "torch" (default), "onnxruntime", "openvino" or "tensorrt":
            the runtime that computes the features (a compiled artifact proven
            equal to PyTorch, cached beside the weights), or a
            :class:`~modelzoo.inference.runtimes.Runtime` already made (an
            exported file from :func:`~modelzoo.inference.runtimes.open_artifact`).
        progress: progress bars on a terminal (the download's too).
        distributed: split the images across the ranks of the default
            process group, which the caller has initialised (every rank must
            call this alike; each gets the same result).  Off by default: a
            process group alone never makes this function collective, so
            ``if rank == 0: evaluate(...)`` works in a training loop.
        process_group: split across this group instead (implies distributed).
        cache_dir, mirrors, offline: where a named model's weights are cached
            and fetched from (as ``modelzoo.get``).

    Raises:
        UnknownDatasetError: an unknown dataset, or a split or trials it does not have.
        DistributedError: ``distributed=True`` without a process group, or a
            rank failed.

    With ``rerank`` or ``aqe`` on a CUDA device, their matrix products run on that GPU.
    """
    from modelzoo import datasets
    from modelzoo.evaluation.trials import average_rankings, per_trial
    from modelzoo.inference.distributed import active_group, group_size, rank_device

    dataset = canonical_dataset(dataset)
    datasets.planned_trials(dataset, split=split, trials=trials)  # refuse a split or trials before any download
    group = active_group(distributed, process_group)
    device = rank_device(device)
    if isinstance(backend, Runtime):
        if group is not None:
            raise ValueError("a runtime already made runs in this process only: for distributed evaluation pass "
                             "backend by name, so that each rank makes its own")
        device, precision = backend.device, backend.precision
    else:
        check_precision(backend, device, precision)  # before any download
    model = _resolve_model(model_or_name, dataset, device, progress, dict(cache_dir=cache_dir, mirrors=mirrors,
                                                                         offline=offline))
    info = model_info(model)
    metric = metric or (info.distance if info is not None else "euclidean")
    test_sets = datasets.read_trials(dataset, data_root, split=split, trials=trials)
    started = time.perf_counter()
    paths, features = _features(model, test_sets, group, device, batch_size, num_workers, precision, backend, progress,
                                flip, cache_dir)
    extracted = time.perf_counter()
    rankings = [_rank(*_query_and_gallery(paths, features, test_set), test_set, metric, max_rank, rerank, aqe, device)
                for test_set in test_sets]
    finished = time.perf_counter()
    first = test_sets[0]
    settings = {
        "metric": metric,
        "rerank": rerank,
        "aqe": aqe,
        "flip": flip,
        "max_rank": max_rank,
        "batch_size": batch_size,
        "precision": precision,
        "backend": backend.backend if isinstance(backend, Runtime) else backend,
        "device": str(device),
        "processes": group_size(group),
        "data_root": str(first.root),
        "dataset_variant": getattr(first, "variant", dataset),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if first.trial is not None:  # a random gallery: the trials, their seeds and each one's metrics
        settings.update(trials=len(test_sets), trial_seeds=[t.trial for t in test_sets], per_trial=per_trial(rankings))
    return _result(info, type(model).__name__, dataset, first, average_rankings(rankings),
                   timings={"features": extracted - started, "ranking": finished - extracted}, settings=settings)


def _resolve_model(
    model_or_name: nn.Module | str, dataset: str, device: torch.device, progress: bool, fetching: dict[str, Any]
) -> nn.Module:
    if not isinstance(model_or_name, str):
        given = sorted(name for name, value in fetching.items() if value is not None)
        if given:
            raise ValueError(f"{', '.join(given)} say where to fetch the weights of a model given by name; "
                             "the model given already holds its weights")
        return model_or_name
    name = model_or_name
    model_name, tag = manifest.split_name(name)
    if tag is None:
        record = manifest.resolve_name(model_name)
        if dataset not in record.checkpoints:
            raise UnknownCheckpointError(
                f"{record.name} has no checkpoint trained on {dataset}; name one of its checkpoints for a "
                f"cross-domain evaluation, e.g. '{record.name}.{next(iter(record.checkpoints), 'market1501')}'"
            )
        name = f"{record.name}.{dataset}"
    return get(name, device=device, progress=progress, **fetching)


def _features(model, test_sets, group, device, batch_size, num_workers, precision, backend, progress, flip, cache_dir):
    """Every image of the test sets (each once, in order) and its features, from one extraction pass.

    One BatchNorm fold and one loader for query and gallery, and for every
    trial of a random gallery (the same images, partitioned anew).  In a
    process group the images are split across the ranks and every rank gets
    all the features, in order (:mod:`modelzoo.inference.distributed`).
    """
    from modelzoo.inference.distributed import extract_features_distributed
    from modelzoo.inference.features import extract_features

    records = [r for test_set in test_sets for r in (*test_set.query, *test_set.gallery)]
    paths = {path: index for index, path in enumerate(dict.fromkeys(r.path for r in records))}
    options = dict(batch_size=batch_size, num_workers=num_workers, flip=flip, progress=progress,
                   description="query + gallery")
    if isinstance(backend, Runtime):
        options.update(backend=backend)
    else:
        options.update(device=device, precision=precision, backend=backend, cache_dir=cache_dir)
    if group is None:
        features = extract_features(model, list(paths), **options)
    else:
        features = extract_features_distributed(model, list(paths), process_group=group, **options)
    return paths, features


def _query_and_gallery(paths: dict, features: torch.Tensor, test_set) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``features`` of one test set's query and gallery images.

    A run of consecutive rows (a fixed gallery: query, then gallery) is a
    view, never a copy: MSMT17's features alone are 0.8 GB.
    """
    def rows(records) -> torch.Tensor:
        indices = [paths[r.path] for r in records]
        start = indices[0] if indices else 0
        if indices == list(range(start, start + len(indices))):
            return features[start:start + len(indices)]
        return features[torch.tensor(indices, dtype=torch.long)]

    return rows(test_set.query), rows(test_set.gallery)


def _ids(records) -> tuple[np.ndarray, np.ndarray]:
    pids = np.array([r.pid for r in records], dtype=np.int64)
    camids = np.array([r.camid for r in records], dtype=np.int64)
    return pids, camids


def _rank(query: Any, gallery: Any, split, metric: str, max_rank: int, rerank: bool, aqe: bool,
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
        query, gallery, q_pids, g_pids, q_camids, g_camids,
        metric=metric, max_rank=max_rank, rerank=rerank,
    )


def _result(info: ModelInfo | None, class_name: str, dataset: str, split, ranking, timings: dict,
            settings: dict) -> EvaluationResult:
    cmc = [100.0 * float(v) for v in ranking.cmc]

    def at(rank: int) -> float:  # a gallery shorter than the rank: the curve has reached its end
        return cmc[min(rank, len(cmc)) - 1]

    return EvaluationResult(
        model=info.record.name if info is not None else class_name,
        checkpoint=info.checkpoint.name if info is not None and info.checkpoint is not None else None,
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
        split=split.split,
    )
