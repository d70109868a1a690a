"""Bad-input catalogue for `sigdiff data import/split/make/info`, run with click's runner.

Every case must fail with exit code != 0, one `Error:` line that names the problem (and the file
where there is one), no traceback, no numpy pickle advice, and nothing new on disk: no store, temp,
lock, figure or folder anywhere under the test folder.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
from click.testing import CliRunner
from sigdiff.cli.data import data

from sigdiff.data.store import write_store

Built = tuple[list[str], tuple[str, ...]]  # (command line, fragments the error line must hold)
CASES: dict[str, Callable[[Path], Built]] = {}

ROWS = np.random.default_rng(0).normal(size=(6, 8))


def case(fn: Callable[[Path], Built]) -> Callable[[Path], Built]:
    CASES[fn.__name__] = fn
    return fn


def _csv(rows: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in r) + "\n" for r in rows)


def _store(path: Path, n: int = 10) -> Path:
    write_store(path, np.random.default_rng(1).normal(size=(n, 1, 16)), sampling_rate=10.0)
    return path


def _hold_lock(target: Path) -> None:
    """A lock held by a live process on this host (our parent), as a concurrent writer's."""
    Path(str(target) + ".lock").write_text(
        json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "token": "other"})
    )


def _import(tmp: Path, name: str, *extra: str) -> list[str]:
    return ["import", str(tmp / name), "--out", str(tmp / "out" / "x.zarr"), *extra]


# ------------------------------------------------------------------------------- import: text


@case
def csv_nan_without_header(tmp: Path) -> Built:
    rows = ROWS.copy()
    rows[4, 2] = np.nan
    (tmp / "d.csv").write_text(_csv(rows))
    return _import(tmp, "d.csv", "--sampling-rate", "10"), ("d.csv", "file line 5",
                                                             "--drop-nonfinite")


@case
def csv_every_row_nan(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("nan,1\n2,inf\n")
    args = _import(tmp, "d.csv", "--sampling-rate", "10", "--drop-nonfinite")
    return args, ("d.csv", "every row has NaN/Inf")


@case
def csv_non_numeric_field(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("a,b\n1,2\n3,x\n")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("d.csv", "row 3 column 2",
                                                           "non-numeric field 'x'")


@case
def csv_ragged(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("1,2,3\n4,5\n6,7,8\n")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("d.csv", "ragged rows: row 2")


@case
def csv_empty(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("\n\n")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("d.csv", "empty input")


@case
def csv_header_only(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("a,b,c\n")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("d.csv", "at least one data row")


@case
def csv_missing_label_column(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("a,b\n1,2\n3,4\n")
    args = _import(tmp, "d.csv", "--sampling-rate", "1", "--label-column", "label")
    return args, ("d.csv", "no column 'label'")


@case
def csv_time_not_uniform(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("time,x\n0,1\n0.1,2\n0.5,3\n")
    return _import(tmp, "d.csv", "--layout", "columns"), ("d.csv", "not uniformly increasing")


@case
def csv_latin1(tmp: Path) -> Built:
    (tmp / "d.csv").write_bytes("tïme,x\n0,1\n".encode("latin-1"))
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("d.csv", "not UTF-8 text")


@case
def csv_nul_bytes(tmp: Path) -> Built:
    (tmp / "d.csv").write_bytes(b"1,2\n3,\x004\n")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("d.csv", "NUL bytes")


@case
def csv_given_format_npy(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    args = _import(tmp, "d.csv", "--format", "npy", "--sampling-rate", "1")
    return args, ("d.csv", "not a NumPy .npy/.npz file", "--format csv")


@case
def ucr_without_rate(tmp: Path) -> Built:
    (tmp / "d.txt").write_text("1 0.1 0.2\n2 0.3 0.5\n")
    return _import(tmp, "d.txt"), ("d.txt", "does not state its sampling rate")


@case
def gzip_corrupt(tmp: Path) -> Built:
    (tmp / "d.txt.gz").write_bytes(gzip.compress(b"1 0.1 0.2\n")[:-5])
    return _import(tmp, "d.txt.gz", "--sampling-rate", "1"), ("d.txt.gz", "not valid gzip")


@case
def folder_as_csv(tmp: Path) -> Built:
    (tmp / "d.csv").mkdir()
    args = _import(tmp, "d.csv", "--format", "csv", "--sampling-rate", "1")
    return args, ("d.csv", "is a folder")


# ------------------------------------------------------------------ import: binary formats


@case
def text_named_wav(tmp: Path) -> Built:
    (tmp / "a.wav").write_text("hello\n")
    return _import(tmp, "a.wav"), ("a.wav", "not a readable audio file", "looks like text")


@case
def text_named_flac(tmp: Path) -> Built:
    (tmp / "a.flac").write_text("hello\n")
    return _import(tmp, "a.flac"), ("a.flac", "not a readable audio file")


@case
def wav_rate_contradiction(tmp: Path) -> Built:
    scipy.io.wavfile.write(tmp / "a.wav", 8000, np.sin(np.arange(400.0)).astype(np.float32))
    args = _import(tmp, "a.wav", "--sampling-rate", "16000")
    return args, ("a.wav", "contradicts the audio header")


@case
def npy_empty_file(tmp: Path) -> Built:
    (tmp / "a.npy").write_bytes(b"")
    return _import(tmp, "a.npy", "--sampling-rate", "1"), ("a.npy", "the file is empty")


@case
def npy_zero_samples(tmp: Path) -> Built:
    np.save(tmp / "a.npy", np.zeros((0, 1, 64)))
    return _import(tmp, "a.npy", "--sampling-rate", "1"), ("a.npy",
                                                           "the array is empty, shape (0, 1, 64)")


@case
def npy_four_dims(tmp: Path) -> Built:
    np.save(tmp / "a.npy", np.ones((2, 2, 2, 2)))
    return _import(tmp, "a.npy", "--sampling-rate", "1"), ("a.npy", "expected an array")


@case
def npy_object_array(tmp: Path) -> Built:
    np.save(tmp / "a.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    return _import(tmp, "a.npy", "--sampling-rate", "1"), ("a.npy", "Python objects")


@case
def npy_strings(tmp: Path) -> Built:
    np.save(tmp / "a.npy", np.array([["a", "b"]]))
    return _import(tmp, "a.npy", "--sampling-rate", "1"), ("a.npy", "is not numeric")


@case
def npy_truncated(tmp: Path) -> Built:
    np.save(tmp / "a.npy", ROWS)
    (tmp / "a.npy").write_bytes((tmp / "a.npy").read_bytes()[:-40])
    return _import(tmp, "a.npy", "--sampling-rate", "1"), ("a.npy", "truncated or corrupt")


@case
def npz_without_signals(tmp: Path) -> Built:
    np.savez(tmp / "a.npz", x=ROWS)
    return _import(tmp, "a.npz", "--sampling-rate", "1"), ("a.npz", "no 'signals' array")


@case
def npz_labels_wrong_length(tmp: Path) -> Built:
    np.savez(tmp / "a.npz", signals=ROWS, labels=np.arange(3))
    return _import(tmp, "a.npz", "--sampling-rate", "1"), ("a.npz", "'labels' has shape (3,)")


@case
def image_npy_with_rate(tmp: Path) -> Built:
    np.save(tmp / "a.npy", np.ones((2, 4, 4)))
    args = _import(tmp, "a.npy", "--format", "image-npy", "--sampling-rate", "5")
    return args, ("a.npy", "images have no sampling rate")


# ------------------------------------------------------------------- import: options, outputs


@case
def missing_file(tmp: Path) -> Built:
    return _import(tmp, "nope.csv", "--sampling-rate", "1"), ("nope.csv", "no such file")


@case
def unknown_suffix(tmp: Path) -> Built:
    (tmp / "a.xyz").write_text("1")
    return _import(tmp, "a.xyz"), ("a.xyz", "cannot tell the format")


@case
def unknown_format(tmp: Path) -> Built:
    (tmp / "a.csv").write_text("1")
    return _import(tmp, "a.csv", "--format", "mp3"), ("unknown format 'mp3'",)


@case
def negative_rate(tmp: Path) -> Built:
    (tmp / "d.txt").write_text("1 0.1 0.2\n2 0.3 0.5\n")
    args = _import(tmp, "d.txt", "--sampling-rate", "-5")
    return args, ("d.txt", "--sampling-rate must be a positive number")


@case
def constant_channel(tmp: Path) -> Built:
    (tmp / "d.txt").write_text("1 2 2 2\n1 2 2 2\n")
    return _import(tmp, "d.txt", "--sampling-rate", "1"), ("x.zarr", "constant")


@case
def window_longer_than_rows(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    args = _import(tmp, "d.csv", "--sampling-rate", "1", "--window", "100")
    return args, ("d.csv", "shorter than one window")


@case
def windows_and_beats(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    args = _import(tmp, "d.csv", "--sampling-rate", "1", "--window", "4", "--beats")
    return args, ("choose windows or beat segments",)


@case
def bandpass_too_short(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    args = _import(tmp, "d.csv", "--sampling-rate", "100", "--bandpass", "1", "10")
    return args, ("d.csv", "band-pass of order 4 needs signals longer")


@case
def layout_on_npy(tmp: Path) -> Built:
    np.save(tmp / "a.npy", ROWS)
    return _import(tmp, "a.npy", "--layout", "rows"), ("a.npy", "apply to CSV only")


@case
def header_on_npy(tmp: Path) -> Built:
    np.save(tmp / "a.npy", ROWS)
    return _import(tmp, "a.npy", "--no-header"), ("a.npy", "apply to CSV only")


@case
def size_on_csv(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    return _import(tmp, "d.csv", "--size", "8"), ("d.csv", "apply to a folder of images")


@case
def output_exists(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    _store(tmp / "out" / "x.zarr")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), ("x.zarr", "already exists")


@case
def output_being_written(tmp: Path) -> Built:
    (tmp / "d.csv").write_text(_csv(ROWS))
    (tmp / "out").mkdir()
    _hold_lock(tmp / "out" / "x.zarr")
    return _import(tmp, "d.csv", "--sampling-rate", "1"), (
        "x.zarr", f"is being written by process {os.getppid()}", "choose another output")


# ------------------------------------------------------------------------------------- split


def _split(tmp: Path, *extra: str) -> list[str]:
    _store(tmp / "s.zarr")
    return ["split", str(tmp / "s.zarr"), "--holdout", "0.2", "--seed", "0", *extra]


@case
def split_holdout_exists(tmp: Path) -> Built:
    args = _split(tmp, "--out-train", str(tmp / "t.zarr"), "--out-holdout", str(tmp / "h.zarr"))
    _store(tmp / "h.zarr")
    return args, ("h.zarr", "already exists")


@case
def split_same_outputs(tmp: Path) -> Built:
    args = _split(tmp, "--out-train", str(tmp / "t.zarr"), "--out-holdout", str(tmp / "t.zarr"))
    return args, ("t.zarr", "are the same store")


@case
def split_train_is_input(tmp: Path) -> Built:
    args = _split(tmp, "--out-train", str(tmp / "s.zarr"), "--overwrite")
    return args, ("s.zarr", "the train output is the input store")


@case
def split_holdout_is_input(tmp: Path) -> Built:
    args = _split(tmp, "--out-holdout", str(tmp / "s.zarr") + "/", "--overwrite")
    return args, ("s.zarr", "the holdout output is the input store")


@case
def split_bad_fraction(tmp: Path) -> Built:
    args = _split(tmp)
    args[args.index("0.2")] = "1.5"
    return args, ("s.zarr", "holdout must be a fraction")


@case
def split_empty_side(tmp: Path) -> Built:
    _store(tmp / "two.zarr", n=2)
    return ["split", str(tmp / "two.zarr"), "--holdout", "0.1", "--seed", "0"], (
        "two.zarr", "leaves an empty side")


@case
def split_not_a_store(tmp: Path) -> Built:
    (tmp / "d.csv").write_text("1,2\n")
    return ["split", str(tmp / "d.csv"), "--holdout", "0.2", "--seed", "0"], (
        "d.csv", "not a sigdiff store")


@case
def split_holdout_being_written(tmp: Path) -> Built:
    args = _split(tmp)
    _hold_lock(tmp / "s.holdout.zarr")
    return args, ("s.holdout.zarr", "is being written by process")


# ------------------------------------------------------------------------------- make, info


@case
def make_unknown(tmp: Path) -> Built:
    return ["make", "nope", "--out", str(tmp / "out" / "x.zarr")], ("unknown data set 'nope'",)


@case
def make_exists(tmp: Path) -> Built:
    _store(tmp / "x.zarr")
    return ["make", "ecg5000", "--out", str(tmp / "x.zarr")], ("x.zarr", "already exists")


@case
def make_being_written(tmp: Path) -> Built:
    _hold_lock(tmp / "x.zarr")
    return ["make", "ecg5000", "--out", str(tmp / "x.zarr")], ("x.zarr", "is being written")


@case
def info_missing(tmp: Path) -> Built:
    return ["info", str(tmp / "nope.zarr")], ("nope.zarr", "not a sigdiff store")


@case
def info_plain_zarr(tmp: Path) -> Built:
    import zarr

    zarr.open_group(tmp / "plain.zarr", mode="w")
    return ["info", str(tmp / "plain.zarr")], ("plain.zarr", "not a sigdiff store")


@case
def info_damaged_store(tmp: Path) -> Built:
    import zarr

    _store(tmp / "s.zarr")
    group = zarr.open_group(tmp / "s.zarr", mode="r+")
    del group.attrs["sampling_rate"]
    with pytest.warns(UserWarning):
        zarr.consolidate_metadata(group.store)
    return ["info", str(tmp / "s.zarr")], ("s.zarr", "damaged sigdiff store")


@case
def info_png_folder_missing(tmp: Path) -> Built:
    _store(tmp / "s.zarr")
    return ["info", str(tmp / "s.zarr"), "--png", str(tmp / "no" / "f.png")], (
        "f.png", "does not exist")


@case
def info_png_wrong_suffix(tmp: Path) -> Built:
    _store(tmp / "s.zarr")
    return ["info", str(tmp / "s.zarr"), "--png", str(tmp / "f.txt")], ("f.txt", "ending in .png")


# ------------------------------------------------------------------------------------- runner


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))  # hidden entries included


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_cleanly(tmp_path: Path, name: str) -> None:
    args, fragments = CASES[name](tmp_path)
    before = _tree(tmp_path)
    result = CliRunner().invoke(data, args)
    out = result.output
    assert result.exit_code != 0, out
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no crash
    assert "Traceback" not in out and "allow_pickle" not in out and "Aborted" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and out.rstrip().splitlines()[-1] == errors[0], out
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert _tree(tmp_path) == before  # nothing written, nothing half-written, no lock or temp


def test_catalogue_covers_every_data_command() -> None:
    commands = {name.split("_")[0] for name in CASES}
    assert {"split", "make", "info"} <= commands and len(CASES) >= 50
