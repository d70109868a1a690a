"""The dataset catalog: one folder per dataset with a CARD.md and embedded data or a builder."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np

from sigdiff._utils import choice_error
from sigdiff.data import synthetic
from sigdiff.data.importers import Imported, parse_ucr
from sigdiff.data.store import (
    PIXEL_RATE,
    PathLike,
    SignalStore,
    StoreError,
    split_store,
    write_store,
)

__all__ = ["CATALOG", "CatalogEntry", "load_dataset", "make_dataset", "make_split"]

ECG5000_MD5 = "a7ec9b6577e0cc897dca3adaaa0699ed"  # of the archive's ECG5000_TRAIN.txt
ECG5000_RATE_HZ = 250.0  # nominal: the rate of source record chf07 (see ecg5000/CARD.md)
DIGITS_MD5 = "a0339c30a8a5312a1b6f9e5c719dcce5"  # of scikit-learn's digits.csv (UCI optdigits.tes)
DIGITS_SIDE = 8  # 8 x 8 pixels
DIGITS_FULL_SCALE = 16.0  # pixels count "on" bits in 4 x 4 blocks: integers 0..16


@dataclass(frozen=True)
class CatalogEntry:
    """A named dataset: a one-line summary and a builder `build(seed=...) -> Imported`."""

    name: str
    summary: str
    build: Callable[..., Imported]

    @property
    def card(self) -> str:
        """The dataset's CARD.md (description, shape, sampling rate, licence, citation)."""
        return (resources.files("sigdiff.datasets") / self.name / "CARD.md").read_text("utf-8")


def _ecg5000(*, seed: int = 0) -> Imported:
    """The embedded ECG5000 training split, checked byte-for-byte against the archive's md5."""
    del seed  # fixed data
    raw = gzip.decompress(
        (resources.files("sigdiff.datasets") / "ecg5000" / "ECG5000_TRAIN.txt.gz").read_bytes()
    )
    if hashlib.md5(raw).hexdigest() != ECG5000_MD5:
        raise StoreError(
            "embedded ECG5000_TRAIN.txt.gz is corrupt (md5 mismatch); reinstall sigdiff"
        )
    signals, labels, _ = parse_ucr(raw.decode("ascii"), where="ecg5000")
    attrs = {
        "dataset": "ecg5000",
        "sampling_rate_note": (
            "nominal 250 Hz: the rate of source record chf07 (BIDMC CHF Database); beats were "
            "interpolated to 140 samples each (Chen et al. 2015), so the true rate varies per beat"
        ),
        "license": "Open Data Commons Attribution License v1.0 (PhysioNet source record)",
        "citation": "Baim et al. 1986; Goldberger et al. 2000 (PhysioNet); Chen et al. 2015; "
        "Dau et al. 2019 (UCR archive)",
        "provenance": {
            "source": "UCR archive ECG5000_TRAIN.txt",
            "md5": ECG5000_MD5,
            "sampling_rate_source": "catalog: nominal rate of the source record",
        },
    }
    return Imported(
        signals, labels, ECG5000_RATE_HZ, "catalog", "ecg5000", channel_names=("ecg",), attrs=attrs
    )


def _digits(*, seed: int = 0) -> Imported:
    """The embedded handwritten digits (scikit-learn's copy of UCI optdigits.tes), md5-checked."""
    del seed  # fixed data
    raw = gzip.decompress(
        (resources.files("sigdiff.datasets") / "digits" / "digits.csv.gz").read_bytes()
    )
    if hashlib.md5(raw).hexdigest() != DIGITS_MD5:
        raise StoreError("embedded digits.csv.gz is corrupt (md5 mismatch); reinstall sigdiff")
    table = np.loadtxt(io.StringIO(raw.decode("ascii")), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :-1], table[:, -1]  # 64 pixels then the digit, per row
    images = pixels.reshape(-1, 1, DIGITS_SIDE, DIGITS_SIDE) / DIGITS_FULL_SCALE  # (N, 1, 8, 8)
    attrs = {
        "dataset": "digits",
        "license": "CC BY 4.0 (UCI Machine Learning Repository)",
        "citation": "Alpaydin & Kaynak 1998 (UCI Optical Recognition of Handwritten Digits); "
        "Kaynak 1995",
        "provenance": {
            "source": "scikit-learn sklearn/datasets/data/digits.csv.gz (UCI optdigits.tes)",
            "md5": DIGITS_MD5,
            "scaling": "pixel counts 0..16 divided by 16",
        },
        "label_names": [str(d) for d in range(10)],
    }
    return Imported(images.astype(np.float32), labels, PIXEL_RATE, "images: one sample per pixel",
                    "digits", channel_names=("gray",), units="intensity [0, 1]", attrs=attrs)


BASICMOTIONS_RATE_HZ = 10.0
BASICMOTIONS_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


def _basicmotions(*, seed: int = 0) -> Imported:
    """UEA BasicMotions (80 × 6 × 100, 4 activities) from the copy inside the aeon package."""
    del seed  # fixed data
    try:
        from aeon.datasets import load_basic_motions
    except ImportError as err:
        raise StoreError("the basicmotions dataset is read from the copy inside the aeon "
                         "package, which is not installed: pip install aeon (or "
                         "pip install 'sigdiff[downstream]')") from err
    x, y = load_basic_motions()  # TRAIN then TEST, (80, 6, 100), string labels
    names = sorted(set(map(str, y)))
    labels = np.array([names.index(str(v)) for v in y], dtype=np.int64)
    attrs = {"dataset": "basicmotions", "label_names": names,
             "license": "UEA/UCR archive terms (research use, cite the archive)",
             "citation": "Bagnall et al. 2018, The UEA multivariate time series classification "
                         "archive (arXiv:1811.00075)",
             "provenance": {"source": "aeon.datasets.load_basic_motions (TRAIN + TEST)"}}
    return Imported(np.asarray(x, dtype=np.float32), labels, BASICMOTIONS_RATE_HZ,
                    "catalog: the archive's 10 Hz", "basicmotions",
                    channel_names=BASICMOTIONS_CHANNELS, units="g (acc), rad/s (gyro)",
                    attrs=attrs)


CATALOG: dict[str, CatalogEntry] = {
    "ecg5000": CatalogEntry(
        "ecg5000", "ECG5000 training split: 500 beats x 140 samples, 5 classes", _ecg5000
    ),
    "digits": CatalogEntry(
        "digits", "handwritten digits (UCI via scikit-learn): 1797 images 8x8, 10 classes", _digits
    ),
    "sines": CatalogEntry(
        "sines",
        "TimeGAN sines: 10000 x 5 channels x 24 steps (generated)",
        partial(synthetic.sines, n=10_000, length=24, channels=5),
    ),
    "ecgsyn": CatalogEntry(
        "ecgsyn",
        "ECGSYN (McSharry 2003): 500 x 4 s at 256 Hz (generated)",
        partial(synthetic.ecgsyn, n=500, length=1024, sampling_rate=256.0),
    ),
    "basicmotions": CatalogEntry(
        "basicmotions",
        "UEA BasicMotions wrist IMU: 80 x 6 channels x 100 at 10 Hz, 4 activities (real; "
        "needs aeon)",
        _basicmotions,
    ),
    "vibration": CatalogEntry(
        "vibration",
        "bearing faults: 400 x 4096 at 12 kHz, 4 classes (generated)",
        partial(synthetic.vibration, n=400, length=4096),
    ),
}


def load_dataset(name: str, *, seed: int = 0) -> Imported:
    """Build a catalog dataset in memory."""
    if name not in CATALOG:
        raise choice_error("dataset", name, CATALOG)
    return CATALOG[name].build(seed=seed)


def make_dataset(
    name: str, out: PathLike, *, seed: int = 0, overwrite: bool = False
) -> SignalStore:
    """Write a catalog dataset to the store `out`."""
    data = load_dataset(name, seed=seed)
    return write_store(
        out,
        data.signals,
        sampling_rate=data.sampling_rate,
        labels=data.labels,
        units=data.units,
        channel_names=data.channel_names,
        attrs=data.attrs,
        overwrite=overwrite,
    )


def make_split(
    name: str, folder: PathLike, *, holdout: float = 0.2, split_seed: int = 0, seed: int = 0,
) -> tuple[Path, Path]:
    """Write catalog dataset `name` and its stratified train/holdout split under `folder` (once:
    an existing split is reused); returns the (train, holdout) store paths."""
    root = Path(folder)
    train, hold = root / "train.zarr", root / "holdout.zarr"
    if not hold.exists():
        make_dataset(name, root / "full.zarr", seed=seed, overwrite=True)
        split_store(root / "full.zarr", holdout=holdout, seed=split_seed, out_train=train,
                    out_holdout=hold, overwrite=True)
    return train, hold
