"""The catalog (embedded ECG5000) and the `sigdiff data` click group, run with click's runner."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sigdiff.cli.data import data
from sigdiff.datasets import CATALOG, load_dataset

from sigdiff.data.store import StoreError, open_store

SHARED_ECG = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg5000" / "ECG5000_TRAIN.txt"
)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(data, list(args))
    return result.exit_code, result.output


#: md5 of the UCR archive's ECG5000_TRAIN.txt (the file in the project's shared data)
UCR_ECG5000_TRAIN_MD5 = "a7ec9b6577e0cc897dca3adaaa0699ed"


def test_ecg5000_embedded_matches_the_archive_file() -> None:
    """The embedded file is the archive's, byte for byte, and the catalog parses it as numpy's
    own text reader does (no dependency on where the shared data sits)."""
    import gzip
    import hashlib
    from importlib import resources

    raw = gzip.decompress((resources.files("sigdiff.datasets") / "ecg5000" /
                           "ECG5000_TRAIN.txt.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == UCR_ECG5000_TRAIN_MD5
    if SHARED_ECG.exists():  # the same file again, where the checkout has the shared data
        assert hashlib.md5(SHARED_ECG.read_bytes()).hexdigest() == UCR_ECG5000_TRAIN_MD5
    ecg = load_dataset("ecg5000")
    assert ecg.signals.shape == (500, 1, 140) and ecg.sampling_rate == 250.0
    np.testing.assert_array_equal(np.bincount(ecg.labels)[1:], [292, 177, 10, 19, 2])
    ref = np.loadtxt(io.StringIO(raw.decode()))
    np.testing.assert_array_equal(ecg.signals[:, 0], ref[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(ecg.labels, ref[:, 0].astype(np.int64))


def test_every_entry_has_a_card() -> None:
    for entry in CATALOG.values():
        card = entry.card
        assert "sampling rate" in card.lower()
        assert "Citation" in card or "Credit" in card


def test_cli_make_info_split(tmp_path: Path) -> None:
    code, out = _run("list")
    assert code == 0 and "ecg5000" in out and "ecgsyn" in out
    store = tmp_path / "ecg.zarr"
    code, out = _run("make", "ecg5000", "--out", str(store))
    assert code == 0 and "500 x 1 x 140 at 250 Hz" in out
    code, out = _run("info", str(store))
    assert code == 0 and '"1": 292' in out and "nominal 250 Hz" in out
    assert (tmp_path / "ecg.info.png").stat().st_size > 1000
    code, out = _run("split", str(store), "--holdout", "0.2", "--seed", "0")
    assert code == 0 and "holdout" in out
    hold = open_store(tmp_path / "ecg.holdout.zarr")
    assert hold.n_samples == 100 and hold.split is not None and hold.split["stratified"]
    quota = 0.2 * np.array([292, 177, 10, 19, 2])  # each class gets floor or ceil of its quota
    got = np.bincount(hold.labels, minlength=6)[1:]
    assert np.all((got == np.floor(quota)) | (got == np.ceil(quota))) and got.sum() == 100
    code, out = _run("make", "ecg5000", "--out", str(store))
    assert code != 0 and "already exists" in out


def test_cli_dry_run_and_errors_leave_nothing(tmp_path: Path) -> None:
    code, out = _run("make", "ecg5000", "--out", str(tmp_path / "x.zarr"), "--dry-run")
    assert code == 0 and '"name": "ecg5000"' in out
    code, out = _run("make", "nope", "--out", str(tmp_path / "x.zarr"))
    assert code != 0 and "valid: " in out and "ecg5000" in out
    bad = tmp_path / "bad.txt"
    bad.write_text("1 0.1 nan 0.3\n2 0.4 0.5 0.6\n")
    code, out = _run("import", str(bad), "--out", str(tmp_path / "b.zarr"), "--sampling-rate", "10")
    assert code != 0 and "row 0 channel 0" in out and "--drop-nonfinite" in out
    code, out = _run(
        "import",
        str(bad),
        "--out",
        str(tmp_path / "b.zarr"),
        "--sampling-rate",
        "10",
        "--drop-nonfinite",
    )
    assert code == 0 and open_store(tmp_path / "b.zarr").n_samples == 1
    code, out = _run("import", str(bad), "--out", str(tmp_path / "c.zarr"))
    assert code != 0 and "does not state its sampling rate" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zarr", "bad.txt"]


def test_cli_import_wav_resample_window_bandpass(tmp_path: Path) -> None:
    import scipy.io.wavfile

    t = np.arange(8000) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    scipy.io.wavfile.write(tmp_path / "a.wav", 8000, tone)
    args = ["import", str(tmp_path / "a.wav"), "--out", str(tmp_path / "a.zarr")]
    code, out = _run(*args, "--resample-to", "4000", "--bandpass", "50", "200", "--window", "400")
    assert code == 0 and "10 x 1 x 400 at 4000 Hz (file: audio header)" in out
    x = open_store(tmp_path / "a.zarr").read()
    freqs = np.fft.rfftfreq(400, 1 / 4000)
    assert freqs[np.argmax(np.abs(np.fft.rfft(x[5, 0])))] == 100.0


def test_cli_import_csv_says_which_header(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(size=(19, 8))
    rows[4, 2] = np.nan
    src = tmp_path / "bad_nan.csv"
    src.write_text("".join(",".join(map(repr, r)) + "\n" for r in rows.tolist()))
    args = ["import", str(src), "--sampling-rate", "10", "--drop-nonfinite"]
    code, out = _run(*args, "--out", str(tmp_path / "a.zarr"))
    assert code == 0 and "18 x 1 x 8" in out and "csv header: none (detected" in out
    code, out = _run(*args, "--out", str(tmp_path / "b.zarr"), "--header")
    assert code == 0 and "17 x 1 x 8" in out and "csv header: line 1 (--header)" in out
    code, out = _run("import", str(src), "--sampling-rate", "10", "--out", str(tmp_path / "c.zarr"))
    assert code != 0 and "(row 4 channel 0) on file line 5" in out


def test_cli_split_refuses_before_writing(tmp_path: Path) -> None:
    store = tmp_path / "ecg.zarr"
    assert _run("make", "ecg5000", "--out", str(store))[0] == 0
    assert _run("make", "ecg5000", "--out", str(tmp_path / "ecg.holdout.zarr"))[0] == 0
    code, out = _run("split", str(store), "--holdout", "0.2", "--seed", "0")
    assert code != 0 and "ecg.holdout.zarr: already exists" in out
    assert not (tmp_path / "ecg.train.zarr").exists()  # the train side was not written first


def test_cli_info_png_checked_first(tmp_path: Path) -> None:
    store = tmp_path / "ecg.zarr"
    assert _run("make", "ecg5000", "--out", str(store))[0] == 0
    code, out = _run("info", str(store), "--png", str(tmp_path / "missing" / "f.png"))
    assert code != 0 and "does not exist" in out and "shape" not in out


def test_basicmotions_is_aeons_copy_with_integer_labels() -> None:
    from aeon.datasets import load_basic_motions

    x, y = load_basic_motions()
    bm = load_dataset("basicmotions")
    assert bm.signals.shape == (80, 6, 100) and bm.sampling_rate == 10.0
    np.testing.assert_array_equal(bm.signals, x.astype(np.float32))
    names = bm.attrs["label_names"]
    assert [names[i] for i in bm.labels] == [str(v) for v in y]
    assert np.bincount(bm.labels).tolist() == [20, 20, 20, 20]


def test_basicmotions_without_aeon_says_what_to_install(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_aeon(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("aeon"):
            raise ImportError("No module named 'aeon'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_aeon)
    with pytest.raises(StoreError, match="pip install aeon"):
        load_dataset("basicmotions")
