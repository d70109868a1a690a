"""The image adapter: image stores, PNG/JPEG and NPY importers, 2D networks, the digits catalog
entry, train -> sample -> eval on images through the CLI, and pixel-space metrics against the
same oracles as the signal metrics (brute-force neighbours, the prdc package, flattened signals)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import prdc as prdc_ref
import pytest
import torch
import xarray as xr
from click.testing import CliRunner
from PIL import Image
from sigdiff.cli.main import cli

from sigdiff.build import build_denoiser
from sigdiff.checkpoint import CheckpointError, find_checkpoint
from sigdiff.config import load_config
from sigdiff.data.importers import load_image_numpy, load_images
from sigdiff.data.store import StoreError, open_store, split_store, write_image_store
from sigdiff.generate import generate, load_model
from sigdiff.image import image_grid
from sigdiff.metrics import evaluate, neighbor_ratio, prdc
from sigdiff.metrics.evaluate import EvalConfig
from sigdiff.metrics.features import EncoderConfig, frechet_distance, load_or_train
from sigdiff.models import build_model
from sigdiff.training import TrainingError, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster than two on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def _fail(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code != 0, res.output
    return res.output


def _blobs(n: int, c: int = 1, h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, c, h, w)).astype(np.float32)


# --------------------------------------------------------------------------- stores
def test_image_store_layout_xarray_and_split(tmp_path: Path) -> None:
    x = _blobs(20, c=3)
    x[:, 1] *= 5.0
    store = write_image_store(tmp_path / "im.zarr", x, labels=np.arange(20) % 2)
    assert store.kind == "image" and store.spatial_shape == (6, 5) and store.n_channels == 3
    np.testing.assert_array_equal(store.read([3, 1, 3]), x[[3, 1, 3]])
    np.testing.assert_allclose(store.norm_mean, x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(store.norm_std, x.std(axis=(0, 2, 3)), rtol=1e-4)
    with pytest.raises(StoreError, match="spatial_shape"):
        _ = store.length
    ds = xr.open_zarr(tmp_path / "im.zarr")
    assert ds["signals"].dims == ("sample", "channel", "height", "width")
    tr, ho = split_store(tmp_path / "im.zarr", holdout=0.25, seed=0, out_train=tmp_path / "a.zarr",
                         out_holdout=tmp_path / "b.zarr")
    assert (tr.n_samples, ho.n_samples, ho.spatial_shape) == (15, 5, (6, 5))
    with pytest.raises(StoreError, match=r"\(N, C, H, W\)"):
        write_image_store(tmp_path / "bad.zarr", x[:, 0, 0])


def test_signal_store_keeps_its_1d_attributes(tmp_path: Path) -> None:
    from sigdiff.data.store import write_store

    s = write_store(tmp_path / "s.zarr", _blobs(4)[:, :, 0], sampling_rate=10.0)
    assert (s.kind, s.spatial_shape, s.length) == ("signal", (5,), 5)
    assert xr.open_zarr(tmp_path / "s.zarr")["signals"].dims == ("sample", "channel", "time")


# --------------------------------------------------------------------------- importers
def _png_folder(root: Path, pixels: np.ndarray) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(pixels):  # (N, H, W) -> mode L, (N, H, W, 3) -> RGB; uint8
        Image.fromarray(img).save(root / f"img_{i:03d}.png")


def test_png_folder_round_trip_gray_rgb_and_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 7, 9, 3), dtype=np.uint8)
    _png_folder(tmp_path / "rgb", rgb)
    out = _run("data", "import", str(tmp_path / "rgb"), "--out", str(tmp_path / "rgb.zarr"),
               "--mode", "rgb")
    assert "5 x 3 x 7 x 9 images" in out
    store = open_store(tmp_path / "rgb.zarr")
    np.testing.assert_allclose(store.read(), np.moveaxis(rgb, -1, 1) / 255.0, atol=1e-7)
    assert store.attrs["channel_names"] == ["red", "green", "blue"]
    gray = load_images(tmp_path / "rgb", mode="gray")  # Pillow's ITU-R 601-2 luma
    luma = np.asarray([np.asarray(Image.fromarray(p).convert("L")) for p in rgb]) / 255.0
    np.testing.assert_allclose(gray.signals[:, 0], luma, atol=1e-7)
    for digit in ("a", "b"):
        _png_folder(tmp_path / "cls" / digit, rgb[:2, :, :, 0])
    labelled = load_images(tmp_path / "cls", mode="gray")
    assert labelled.labels.tolist() == [0, 0, 1, 1] and labelled.attrs["label_names"] == ["a", "b"]


def test_resize_and_centre_crop(tmp_path: Path) -> None:
    wide = np.zeros((10, 20), np.uint8)  # H 10, W 20: black edges, white centre columns 5..14
    wide[:, 5:15] = 255
    _png_folder(tmp_path / "f", wide[None])
    Image.fromarray(np.zeros((30, 12), np.uint8)).save(tmp_path / "f" / "tall.jpg")
    data = load_images(tmp_path / "f", mode="gray", size=8)  # mixed sizes: fine with a size
    assert data.signals.shape == (2, 1, 8, 8)
    assert data.signals[0].mean() > 0.9  # 20x10 -> 16x8, centre 8 columns: the white band
    assert load_images(tmp_path / "f", mode="rgb", size="4x6").signals.shape == (2, 3, 4, 6)


def test_image_import_errors_name_the_file(tmp_path: Path) -> None:
    _png_folder(tmp_path / "mixed", np.zeros((1, 4, 4), np.uint8))
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "mixed" / "odd.png")
    out = _fail("data", "import", str(tmp_path / "mixed"), "--out", str(tmp_path / "m.zarr"))
    assert "odd.png" in out and "--size" in out
    assert not (tmp_path / "m.zarr").exists()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    out = _fail("data", "import", str(tmp_path / "broken"), "--out", str(tmp_path / "b.zarr"),
                "--size", "8")
    assert "x.png" in out and "cannot read" in out
    (tmp_path / "empty").mkdir()
    assert "no .png" in _fail("data", "import", str(tmp_path / "empty"), "--out",
                              str(tmp_path / "e.zarr"))
    assert "N or HxW" in _fail("data", "import", str(tmp_path / "mixed"), "--out",
                               str(tmp_path / "e.zarr"), "--size", "big")
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 4)))
    assert "--size/--mode" in _fail("data", "import", str(tmp_path / "a.npy"), "--out",
                                    str(tmp_path / "e.zarr"), "--size", "8")


def test_npy_images(tmp_path: Path) -> None:
    x = _blobs(4, c=2)
    np.save(tmp_path / "g.npy", x[:, 0])
    np.save(tmp_path / "c.npy", x)
    assert load_image_numpy(tmp_path / "g.npy").signals.shape == (4, 1, 6, 5)
    _run("data", "import", str(tmp_path / "c.npy"), "--format", "image-npy", "--out",
         str(tmp_path / "c.zarr"))
    np.testing.assert_array_equal(open_store(tmp_path / "c.zarr").read(), x)
    np.save(tmp_path / "bad.npy", np.zeros((2, 3)))
    with pytest.raises(StoreError, match=r"\(N, H, W\)"):
        load_image_numpy(tmp_path / "bad.npy")


def test_image_grid_layout() -> None:
    grid = image_grid(np.ones((3, 1, 2, 2)), ncols=2, pad=1, scale=2, value_range=(0.0, 2.0))
    assert grid.shape == (2 * (2 * 3 + 1), 2 * (2 * 3 + 1)) and grid.dtype == np.uint8
    assert set(np.unique(grid)) == {128, 255}  # images at half range, padding white


# --------------------------------------------------------------------------- networks, rank
@pytest.mark.parametrize("name", ["unet", "dit"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_2d_networks_keep_the_shape(name: str, size: tuple[int, int]) -> None:
    net, cfg = build_model(name, preset="tiny", dims=2, in_channels=3, out_channels=3,
                           **({"input_size": (8, 8)} if name == "dit" else {}))
    out = net(torch.randn(2, 3, *size), torch.rand(2))
    assert out.shape == (2, 3, *size) and cfg.dims == 2


def test_trainer_picks_dims_from_the_data_and_rejects_the_other_rank(tmp_path: Path) -> None:
    path = tmp_path / "im.zarr"
    write_image_store(path, _blobs(16))
    for name in ("unet", "dit"):
        cfg = load_config(overrides={"data": str(path), "model": {"name": name, "preset": "tiny"}})
        _, mcfg = build_denoiser(cfg, in_channels=1, num_classes=0, spatial_shape=(6, 5))
        assert mcfg["dims"] == 2
    bad = load_config(overrides={"data": str(path), "steps": 1, "batch_size": 4,
                                 "model": {"name": "unet", "preset": "tiny",
                                           "overrides": {"dims": 1}}})
    with pytest.raises(TrainingError, match="dims=1"):
        train(bad, run_dir=tmp_path / "r1", progress=False)
    crop = load_config(overrides={"data": str(path), "steps": 1, "crop_length": 4,
                                  "model": {"name": "unet", "preset": "tiny"}})
    with pytest.raises(TrainingError, match="crop_length"):
        train(crop, run_dir=tmp_path / "r2", progress=False)


# --------------------------------------------------------------------------- end to end
def test_digits_make_train_sample_eval_through_the_cli(tmp_path: Path) -> None:
    d = str(tmp_path / "digits.zarr")
    assert "1797 x 1 x 8 x 8 images" in _run("data", "make", "digits", "--out", d)
    assert open_store(d).labels is not None
    assert "figure" in _run("data", "info", d)  # an image store's info is a grid of images
    assert (tmp_path / "digits.info.png").stat().st_size > 0
    _run("data", "split", d, "--holdout", "0.2", "--seed", "0")
    train_store, holdout = str(tmp_path / "digits.train.zarr"), str(tmp_path / "digits.holdout.zarr")
    run = str(tmp_path / "run")
    _run("train", "--data", train_store, "--out", run, "--preset", "tiny", "--steps", "4",
         "--batch-size", "8", "--quiet")
    meta = json.loads((find_checkpoint(run) / "meta.json").read_text())
    assert meta["spatial_shape"] == [8, 8] and meta["kind"] == "image"
    samples = str(tmp_path / "s.zarr")
    _run("sample", "--run", run, "--n", "12", "--out", samples, "--steps", "3", "--quiet")
    assert open_store(samples).spatial_shape == (8, 8)
    ev = tmp_path / "ev"
    out = _run("eval", "--train", train_store, "--holdout", holdout, "--samples", samples,
               "--out", str(ev), "--permutations", "5", "--extras", "alpha_beta,tsgbench",
               "--no-progress")
    assert "Skipped spectral" in out and "Skipped tsgbench" in out
    report = json.loads((ev / "metrics.json").read_text())
    assert report["meta"]["kind"] == "image" and report["spectral"] == {}
    assert "authenticity" in report["alignment_vs_holdout"]
    for png in ("samples_grid.png", "train_grid.png", "nearest_pairs.png", "pca_scatter.png"):
        assert (ev / png).stat().st_size > 0
    # a checkpoint whose network rank does not match its data: a clear error, not a crash
    ckpt = find_checkpoint(run)
    meta["spatial_shape"] = [64]
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="dims=2"):
        load_model(ckpt)


def test_generate_rebuilds_image_shape_and_units(tmp_path: Path) -> None:
    path = tmp_path / "im.zarr"
    write_image_store(path, 3.0 + 2.0 * _blobs(16, c=2))
    cfg = load_config(overrides={"data": str(path), "steps": 1, "batch_size": 4,
                                 "checkpoint_every": 1, "model": {"name": "dit", "preset": "tiny"}})
    train(cfg, run_dir=tmp_path / "r", progress=False)
    x = generate(load_model(tmp_path / "r"), n=3, seed=0, steps=2, progress=False)
    assert x.shape == (3, 2, 6, 5) and np.isfinite(x).all()


# --------------------------------------------------------------------------- metrics
def test_image_memorization_and_prdc_match_the_oracles() -> None:
    train_x, gen = _blobs(30, c=2, seed=1), _blobs(12, c=2, seed=2)
    gen[0] = train_x[4]  # an exact copy
    r = neighbor_ratio(gen, train_x)
    diff = gen.reshape(12, 1, -1).astype(np.float64) - train_x.reshape(1, 30, -1)
    d = np.linalg.norm(diff, axis=-1)
    brute = np.sort(d, axis=1)
    np.testing.assert_allclose(r.d1, brute[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.d2, brute[:, 1], rtol=1e-9, atol=1e-12)
    assert r.nearest[0] == 4 and r.memorized[0]
    ours = prdc(train_x, gen[1:], k=3)  # the oracle's float32 distances blur the exact copy
    ref = prdc_ref.compute_prdc(train_x.reshape(30, -1).astype(np.float64),
                                gen[1:].reshape(11, -1).astype(np.float64), nearest_k=3)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(ref[key])


def test_evaluate_on_images_equals_evaluate_on_flattened_pixels() -> None:
    tr, ho, sa = _blobs(40, seed=3), _blobs(20, seed=4), _blobs(20, seed=5)
    opts = {"sampling_rate": 1.0, "progress": False,
            "config": EvalConfig(extras=("alpha_beta",), mmd_permutations=10)}
    img = evaluate(tr, ho, sa, **opts)
    sig = evaluate(*(x.reshape(len(x), 1, -1) for x in (tr, ho, sa)), **opts)
    # pixel-space figures agree; the low-pass, the smoothed references and the mode-dropped set
    # (clustered on low-passed records) act along both image axes (2D) rather than one (1D), so
    # they differ by design
    spatial = ("smoothed", "smoothed@1", "mode_dropped")
    for section in ("memorization", "alignment_vs_holdout", "alignment_vs_train"):
        for metric, values in img[section].items():
            if metric.endswith("_lowpass"):
                continue
            for source, v in values.items():
                if source not in spatial:
                    assert v == sig[section][metric][source], (section, metric, source)
    assert img["gate"]["metrics"].keys() == {"mmd2", "c2st_1nn"}  # no spectrum for images
    assert set(img["meta"]["skipped"]) == {"spectral"} and sig["meta"]["skipped"] == {}
    assert img["spectral"] == {} and sig["spectral"]


def test_learned_features_are_rank_agnostic(tmp_path: Path) -> None:
    x = _blobs(40, c=1, h=8, w=8, seed=6)
    cfg = EncoderConfig(width=8, features=8, epochs=2, batch_size=20)
    ext = load_or_train(x, seed=0, cfg=cfg, cache_dir=tmp_path)
    feats = ext(x)
    assert feats.shape == (40, 8) and frechet_distance(feats, feats) == pytest.approx(0, abs=1e-6)
    again = load_or_train(x, seed=0, cfg=cfg, cache_dir=tmp_path)  # from the cache
    np.testing.assert_allclose(again(x), feats, rtol=1e-6)
    assert frechet_distance(feats, ext(x + 3.0)) > 0


def test_an_image_sweep_gets_its_report(tmp_path: Path) -> None:
    """Images have no spectra: the sweep report leaves those figures out instead of failing."""
    from sigdiff.report import write_report
    from sigdiff.sweep import load_sweep, run_sweep

    (tmp_path / "sweep.toml").write_text("""
name = "digits tiny"
seeds = [0, 1]
train_subsets = [8]
[data]
dataset = "digits"
[train]
steps = 4
batch_size = 8
checkpoint_every = 2
model = { name = "unet", preset = "tiny" }
optim = { warmup_steps = 1 }
[eval]
n_samples = 12
sampler_steps = 3
[[arm]]
label = "uniform"
[[arm]]
label = "CI large t"
timesteps = { name = "ci_gaussian", floor = 0.3, params = { center = 0.8, width = 0.6 } }
""")
    out = tmp_path / "out"
    run_sweep(load_sweep(tmp_path / "sweep.toml", out_dir=out), out, progress=False)
    md = write_report(out, out / "report").read_text()
    assert "## Training-set size 8" in md and (out / "report" / "over_steps_n8.png").is_file()
