"""Contract tests for the denoiser networks: every model × dimensionality passes the same checks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from sigdiff.models import MODELS, PRESETS, DiTConfig, UNetConfig, build_model, make_config

SHAPES: dict[int, list[tuple[int, ...]]] = {
    1: [(2, 1, 140), (2, 1, 137), (2, 1, 1), (3, 4, 33)],
    2: [(2, 1, 8, 8), (2, 3, 13, 9), (1, 1, 1, 1)],
}
CASES = [(name, dims) for name in MODELS for dims in (1, 2)]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and OpenMP threads spin badly on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, dims: int, *, seed: int = 0, **overrides: object) -> nn.Module:
    """A `tiny` model built reproducibly without touching the caller's global RNG."""
    if name == "dit" and dims == 2:
        overrides.setdefault("input_size", 8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _ = build_model(name, preset="tiny", dims=dims, **overrides)
    return model


def perturb(model: nn.Module, seed: int = 1) -> nn.Module:
    """Move every parameter off its (partly zero) init so that every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def inputs(shape: tuple[int, ...], seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape[0], generator=g)


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_shapes_any_size_and_channels(name: str, dims: int) -> None:
    for shape in SHAPES[dims]:
        model = perturb(build(name, dims, in_channels=shape[1], out_channels=shape[1]))
        x, c = inputs(shape)
        y = model(x, c)
        assert y.shape == x.shape
        assert torch.isfinite(y).all() and y.abs().sum() > 0


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_initial_output_is_exactly_zero(name: str, dims: int) -> None:
    """Zero-init output conv (U-Net) / adaLN-Zero and zero final layer (DiT)."""
    x, c = inputs(SHAPES[dims][0])
    assert torch.equal(build(name, dims)(x, c), torch.zeros_like(x))


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_class_conditioning_and_null_class(name: str, dims: int) -> None:
    model = perturb(build(name, dims, num_classes=3))
    x, c = inputs(SHAPES[dims][0])
    b = x.shape[0]
    y0 = model(x, c, torch.zeros(b, dtype=torch.long))
    y1 = model(x, c, torch.ones(b, dtype=torch.long))
    assert not torch.allclose(y0, y1)
    null = model(x, c, torch.full((b,), 3, dtype=torch.long))  # index num_classes = no label
    assert torch.equal(model(x, c), null)


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_noise_level_changes_output(name: str, dims: int) -> None:
    for embedding in ("fourier", "positional"):
        model = perturb(build(name, dims, embedding=embedding))
        x, c = inputs(SHAPES[dims][0])
        assert not torch.allclose(model(x, c), model(x, c + 0.5))


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_deterministic_given_seed(name: str, dims: int) -> None:
    state = torch.random.get_rng_state()
    a, b, other = build(name, dims, seed=5), build(name, dims, seed=5), build(name, dims, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, po) for pa, po in zip(a.parameters(), other.parameters()))
    x, c = inputs(SHAPES[dims][0])
    assert torch.equal(perturb(a)(x, c), perturb(b)(x, c))


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_gradient_reaches_every_parameter(name: str, dims: int) -> None:
    """Zero-init layers block gradients at step 0; after three steps every parameter has one.

    Step 1 moves the output layer, step 2 the gates/modulations behind it, step 3 the rest.
    """
    model = build(name, dims, num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, c = inputs(SHAPES[dims][0])
    cond = torch.tensor([0, 1])
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x, c, cond), x).backward()
        opt.step()
    for key, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, key


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_preset_parameter_counts(name: str) -> None:
    for dims in (1, 2):
        assert n_params(build(name, dims)) < 50_000
    small, _ = build_model(name, preset="small")
    assert 1_000_000 <= n_params(small) <= 3_000_000
    with torch.device("meta"):  # no memory, no init cost
        base, _ = build_model(name, preset="base")
    assert n_params(base) >= 20_000_000


def test_registry_errors_list_valid_names() -> None:
    with pytest.raises(ValueError, match="unet"):
        build_model("resnet")
    with pytest.raises(ValueError, match="small"):
        build_model("unet", preset="huge")
    with pytest.raises(ValueError, match="base_channels"):
        build_model("unet", base_channel=8)
    with pytest.raises(ValueError, match="fourier"):
        build_model("dit", preset="tiny", embedding="learned")
    with pytest.raises(ValueError, match="dims"):
        build_model("unet", preset="tiny", dims=3)
    with pytest.raises(ValueError, match="attention_levels"):
        build_model("unet", preset="tiny", attention_levels=(5,))
    with pytest.raises(ValueError, match="hidden_size"):
        build_model("dit", preset="tiny", num_heads=5)


@pytest.mark.parametrize("name", list(MODELS))
def test_config_dict_round_trip(name: str) -> None:
    for preset in PRESETS[name]:
        config = make_config(name, preset=preset, num_classes=4)
        data = json.loads(json.dumps(dataclasses.asdict(config)))
        assert type(config)(**data) == config
        assert make_config(name, **data) == config


def test_overrides_beat_presets() -> None:
    config = make_config("unet", preset="tiny", base_channels=12)
    assert isinstance(config, UNetConfig) and config.base_channels == 12
    dit = make_config("dit", input_size=16, dims=2)  # an int is repeated over the axes
    assert isinstance(dit, DiTConfig) and dit.input_size == (16, 16)
    square = make_config("dit", preset="small", dims=2)  # presets give one size for any rank
    assert isinstance(square, DiTConfig) and square.input_size == (140, 140)


@pytest.mark.parametrize(("name", "dims"), CASES)
def test_bad_input_names_expected_shape(name: str, dims: int) -> None:
    model = build(name, dims, in_channels=2, out_channels=2)
    axes = "(B, C, L)" if dims == 1 else "(B, C, H, W)"
    good = torch.zeros(2, 2, *(8,) * dims)
    c = torch.zeros(2)
    with pytest.raises(ValueError, match=rf"{axes}.*C=2"):
        model(torch.zeros(2, 3, *(8,) * dims), c)  # wrong channel count
    other = (2, 2, 8) if dims == 2 else (2, 2, 8, 8)  # a store of the other dimensionality
    with pytest.raises(ValueError, match=r"\(B, C"):
        model(torch.zeros(other), c)
    with pytest.raises(ValueError, match="c_noise"):
        model(good, torch.zeros(3))
    with pytest.raises(ValueError, match="unconditional"):
        model(good, c, torch.zeros(2, dtype=torch.long))
    conditional = build(name, dims, in_channels=2, out_channels=2, num_classes=2)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        conditional(good, c, torch.tensor([0, 3]))
    assert conditional(good, torch.tensor(0.5)).shape == good.shape  # scalar c_noise broadcasts


@pytest.mark.parametrize("dims", [1, 2])
def test_dit_learned_positions_interpolate(dims: int) -> None:
    model = perturb(build("dit", dims, pos_embed="learned"))
    for shape in SHAPES[dims]:
        x, c = inputs((shape[0], 1, *shape[2:]))
        assert model(x, c).shape == x.shape
