"""The training loop, its optimiser and schedule."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from model_core import VideoTransformer
from model_core.data import ClipSpec
from model_core.training import (
    StepInfo,
    TrainConfig,
    cosine_with_warmup,
    param_groups,
    resolve_device,
    train,
)

MakeModel = Callable[..., VideoTransformer]


def test_steps_on_one_small_batch_lower_the_loss(
    make_tiny_model: MakeModel, tiny_spec: ClipSpec
) -> None:
    # One batch of 11 clips, one per class, seen again every epoch.
    config = TrainConfig(
        clips=11, batch_size=11, epochs=8, lr=2e-3, warmup=0.0, label_smoothing=0.0,
        spec=tiny_spec,
    )  # fmt: skip
    steps: list[StepInfo] = []
    result = train(make_tiny_model(), config, progress=steps.append)
    assert result.steps == len(steps) == 8 and result.clips_seen == 88
    assert [s.step for s in steps] == list(range(1, 9))
    first, last = result.losses[0], sum(result.losses[-3:]) / 3
    assert last < 0.75 * first, result.losses
    assert result.final_loss == pytest.approx(sum(result.losses) / 8)
    assert len(result.epoch_losses) == 8


def test_the_same_seed_gives_the_same_first_batch_loss(
    make_tiny_model: MakeModel, tiny_spec: ClipSpec
) -> None:
    def first_loss(seed: int) -> float:
        config = TrainConfig(clips=8, batch_size=8, epochs=1, seed=seed, spec=tiny_spec)
        return train(make_tiny_model(seed), config).losses[0]

    loss = first_loss(5)
    assert first_loss(5) == loss
    assert first_loss(6) != loss


def test_the_schedule_warms_up_then_follows_a_cosine() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    schedule = cosine_with_warmup(optimizer, total_steps=10, warmup_steps=2, min_ratio=0.1)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert rates[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 8)))
    assert all(a > b for a, b in itertools.pairwise(rates[2:]))
    assert rates[-1] > 0.1
    with pytest.raises(ValueError):
        cosine_with_warmup(optimizer, total_steps=4, warmup_steps=5)


def test_biases_norms_and_embeddings_are_not_decayed(make_tiny_model: MakeModel) -> None:
    model = make_tiny_model()
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"pos_embed", "cls_token", "blocks.0.norm1.weight", "head.bias"} <= skipped
    assert all(names[id(p)].endswith("weight") for p in decay["params"])
    assert "blocks.0.attn.qkv.weight" not in skipped
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
