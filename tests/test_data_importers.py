"""Importers: exact round trips from each format, and a named error for each kind of bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile

from sigdiff.data.importers import Segmenting, import_file, load_csv, load_ucr, parse_ucr
from sigdiff.data.store import StoreError, open_store

ROWS = np.array([[0.5, -1.25, 2.0, 3.5], [1.0, 0.0, -2.5, 4.0], [7.0, 1.5, 0.25, -3.0]], np.float32)


def _ucr_text(labels: list[str], rows: np.ndarray, sep: str = "  ") -> str:
    return "\n".join(sep.join([lab, *map(repr, map(float, r))]) for lab, r in zip(labels, rows))


class TestUCR:
    @pytest.mark.parametrize("sep", ["  ", "\t", ","])
    def test_round_trip(self, tmp_path: Path, sep: str) -> None:
        src = tmp_path / "d.tsv"
        src.write_text(_ucr_text(["1", "2", "1"], ROWS, sep))
        store = import_file(src, tmp_path / "s.zarr", sampling_rate=100.0)
        np.testing.assert_array_equal(store.read()[:, 0], ROWS)
        np.testing.assert_array_equal(store.labels, [1, 2, 1])
        assert store.attrs["provenance"]["sampling_rate_source"] == "user"

    def test_gzip_and_text_labels(self, tmp_path: Path) -> None:
        src = tmp_path / "d.txt.gz"
        src.write_bytes(gzip.compress(_ucr_text(["b", "a", "b"], ROWS).encode()))
        data = load_ucr(src, sampling_rate=1.0)
        np.testing.assert_array_equal(data.labels, [1, 0, 1])
        assert data.attrs["label_names"] == ["a", "b"]

    def test_rate_required(self, tmp_path: Path) -> None:
        src = tmp_path / "d.txt"
        src.write_text(_ucr_text(["1"] * 3, ROWS))
        with pytest.raises(StoreError, match="does not state its sampling rate"):
            import_file(src, tmp_path / "s.zarr")
        assert not (tmp_path / "s.zarr").exists()

    def test_ragged_row_named(self) -> None:
        with pytest.raises(StoreError, match="ragged rows: row 2 has 2 values"):
            parse_ucr("1 0.1 0.2 0.3\n1 0.1 0.2\n2 1 2 3", where="x.txt")

    def test_non_numeric_named(self) -> None:
        with pytest.raises(StoreError, match=r"row 2 column 3: non-numeric field 'abc'"):
            parse_ucr("1 0.1 0.2 0.3\n1 0.1 abc 0.3", where="x.txt")

    def test_empty(self) -> None:
        with pytest.raises(StoreError, match="empty"):
            parse_ucr("\n\n", where="x.txt")

    def test_nonfinite_error_then_drop(self, tmp_path: Path) -> None:
        src = tmp_path / "d.txt"
        rows = ROWS.copy()
        rows[1, 2] = np.nan
        src.write_text(_ucr_text(["1", "2", "3"], rows))
        with pytest.raises(StoreError, match=r"1 NaN/Inf values in 1 rows \(row 1 channel 0\)"):
            import_file(src, tmp_path / "s.zarr", sampling_rate=1.0)
        assert not (tmp_path / "s.zarr").exists()
        store = import_file(src, tmp_path / "s.zarr", sampling_rate=1.0, drop_nonfinite=True)
        np.testing.assert_array_equal(store.read()[:, 0], ROWS[[0, 2]])
        np.testing.assert_array_equal(store.labels, [1, 3])
        assert store.attrs["dropped_nonfinite_rows"] == [1]


class TestCSV:
    def test_rows_layout_with_labels(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        lines = ["label,t0,t1,t2,t3"] + [
            f"{k}," + ",".join(map(repr, map(float, r))) for k, r in zip([3, 4, 3], ROWS)
        ]
        src.write_text("\n".join(lines))
        data = load_csv(src, sampling_rate=10.0, label_column="label")
        np.testing.assert_array_equal(data.signals[:, 0], ROWS)
        np.testing.assert_array_equal(data.labels, [3, 4, 3])

    def test_columns_layout_reads_rate_from_time(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        t = np.arange(4) / 50.0
        src.write_text(
            "time,ax,ay\n"
            + "\n".join(
                f"{a!r},{b!r},{c!r}"
                for a, b, c in zip(t.tolist(), ROWS[0].tolist(), ROWS[1].tolist())
            )
        )
        data = load_csv(src, layout="columns")
        assert data.sampling_rate == pytest.approx(50.0) and data.rate_source.startswith("file")
        np.testing.assert_array_equal(data.signals[0], ROWS[:2])
        assert data.channel_names == ("ax", "ay")
        with pytest.raises(StoreError, match="contradicts"):
            load_csv(src, layout="columns", sampling_rate=100.0)


class TestNumpyAudio:
    def test_npy_and_npz(self, tmp_path: Path) -> None:
        x = np.random.default_rng(0).normal(size=(6, 2, 16)).astype(np.float32)
        np.save(tmp_path / "a.npy", x)
        s = import_file(tmp_path / "a.npy", tmp_path / "a.zarr", sampling_rate=5.0)
        np.testing.assert_array_equal(s.read(), x)
        np.savez(tmp_path / "b.npz", signals=x, labels=np.arange(6), sampling_rate=9.0)
        s = import_file(tmp_path / "b.npz", tmp_path / "b.zarr")
        np.testing.assert_array_equal(s.read(), x)
        assert s.sampling_rate == 9.0 and s.labels is not None

    def test_npy_bad_ndim(self, tmp_path: Path) -> None:
        np.save(tmp_path / "a.npy", np.zeros((2, 2, 2, 2)))
        with pytest.raises(StoreError, match="expected an array"):
            import_file(tmp_path / "a.npy", tmp_path / "a.zarr", sampling_rate=1.0)

    def test_wav_windows_rate_from_header(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(1)
        audio = rng.uniform(-0.5, 0.5, size=(1000, 2)).astype(np.float32)  # (T, C)
        scipy.io.wavfile.write(tmp_path / "a.wav", 8000, audio)
        seg = Segmenting(window=256, hop=128)
        s = import_file(tmp_path / "a.wav", tmp_path / "a.zarr", segmenting=seg)
        assert s.sampling_rate == 8000.0 and s.n_samples == (1000 - 256) // 128 + 1
        np.testing.assert_array_equal(s.read([2])[0], audio[256:512].T)
        with pytest.raises(StoreError, match="contradicts the audio header"):
            import_file(tmp_path / "a.wav", tmp_path / "b.zarr", sampling_rate=16000.0)

    def test_flac_via_soundfile(self, tmp_path: Path) -> None:
        soundfile = pytest.importorskip("soundfile")
        pcm = np.random.default_rng(2).integers(-(2**15), 2**15, size=(500, 1)).astype(np.int16)
        soundfile.write(tmp_path / "a.flac", pcm, 4000, subtype="PCM_16")
        s = import_file(tmp_path / "a.flac", tmp_path / "a.zarr")
        assert s.sampling_rate == 4000.0
        np.testing.assert_array_equal(s.read()[0, 0], pcm[:, 0] / 2**15)  # lossless

    @pytest.mark.filterwarnings("ignore::Warning:wfdb.*")
    def test_wfdb_record(self, tmp_path: Path) -> None:
        wfdb = pytest.importorskip("wfdb")
        sig = np.round(np.random.default_rng(3).normal(size=(300, 2)), 3)
        wfdb.wrsamp(
            "rec",
            fs=360,
            units=["mV", "mV"],
            sig_name=["MLII", "V5"],
            p_signal=sig,
            fmt=["16", "16"],
            adc_gain=[1000.0, 1000.0],
            baseline=[0, 0],
            write_dir=str(tmp_path),
        )
        s = import_file(tmp_path / "rec.hea", tmp_path / "r.zarr")
        assert s.sampling_rate == 360.0 and s.attrs["channel_names"] == ["MLII", "V5"]
        np.testing.assert_allclose(s.read()[0], sig.T, atol=1e-6)

    def test_unknown_format(self, tmp_path: Path) -> None:
        (tmp_path / "a.xyz").write_text("1")
        with pytest.raises(StoreError, match="cannot tell the format"):
            import_file(tmp_path / "a.xyz", tmp_path / "a.zarr")
        with pytest.raises(ValueError, match="valid choices"):
            import_file(tmp_path / "a.xyz", tmp_path / "a.zarr", format="mp3")


def test_store_opens_after_import_only(tmp_path: Path) -> None:
    """An import that fails part-way (constant channel) leaves no store and no temp dir."""
    src = tmp_path / "d.txt"
    src.write_text("1 2 2 2\n1 2 2 2")
    with pytest.raises(StoreError, match="constant"):
        import_file(src, tmp_path / "s.zarr", sampling_rate=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.txt"]
    with pytest.raises(StoreError):
        open_store(tmp_path / "s.zarr")


def _csv(rows: np.ndarray, header: str | None = None) -> str:
    lines = [",".join(map(repr, map(float, r))) for r in rows]
    return "\n".join(([header] if header else []) + lines) + "\n"


class TestCSVHeader:
    """A first line of numbers is data, not a header; messages count file lines."""

    def test_headerless_file_keeps_its_first_record(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text(_csv(ROWS))
        data = load_csv(src, sampling_rate=1.0)
        np.testing.assert_array_equal(data.signals[:, 0], ROWS)
        assert data.attrs["csv_header"] == {"present": False, "how": "detected"}

    def test_header_detected(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text(_csv(ROWS, "t0,t1,t2,t3"))
        data = load_csv(src, sampling_rate=1.0)
        np.testing.assert_array_equal(data.signals[:, 0], ROWS)
        assert data.attrs["csv_header"] == {"present": True, "how": "detected"}

    def test_text_labels_without_header_are_data(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text("".join(f"{k}," + _csv(r[None]) for k, r in zip("aba", ROWS)))
        data = load_csv(src, sampling_rate=1.0, label_column="1")
        np.testing.assert_array_equal(data.signals[:, 0], ROWS)
        np.testing.assert_array_equal(data.labels, [0, 1, 0])
        assert data.attrs["csv_header"]["present"] is False

    def test_forced_either_way(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text(_csv(ROWS))
        data = load_csv(src, sampling_rate=1.0, header=True)  # numeric names, as the user says
        np.testing.assert_array_equal(data.signals[:, 0], ROWS[1:])
        assert data.attrs["csv_header"] == {"present": True, "how": "given"}
        src.write_text(_csv(ROWS, "a,b,c,d"))
        with pytest.raises(StoreError, match=r"row 1 column 1: non-numeric field 'a'"):
            load_csv(src, sampling_rate=1.0, header=False)

    def test_no_header_names_columns_by_position(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text(_csv(ROWS))
        with pytest.raises(StoreError, match=r"no column 'label'.*no header line"):
            load_csv(src, sampling_rate=1.0, label_column="label")

    def test_byte_order_mark_is_not_part_of_the_header(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_bytes(b"\xef\xbb\xbf" + b"time,ax\n0,1\n0.5,2\n1.0,4\n")
        data = load_csv(src, layout="columns")
        assert data.channel_names == ("ax",) and data.sampling_rate == 2.0

    @pytest.mark.parametrize(
        ("header", "nan_line"), [(None, 2), ("t0,t1,t2,t3", 3)], ids=["no-header", "header"]
    )
    def test_nan_error_names_the_file_line(
        self, tmp_path: Path, header: str | None, nan_line: int
    ) -> None:
        rows = ROWS.copy()
        rows[1, 0] = np.nan
        src = tmp_path / "d.csv"
        src.write_text(_csv(rows, header))
        with pytest.raises(StoreError, match=rf"\(row 1 channel 0\) on file line {nan_line};"):
            import_file(src, tmp_path / "s.zarr", sampling_rate=1.0)
        store = import_file(src, tmp_path / "s.zarr", sampling_rate=1.0, drop_nonfinite=True)
        assert store.n_samples == 2 and store.attrs["dropped_nonfinite_lines"] == [nan_line]

    def test_blank_lines_and_quoted_newlines_keep_line_numbers(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text('name,a,b\n\n"x\ny",1,2\n\n"z",3,oops\n')
        with pytest.raises(StoreError, match=r"row 6 column 3: non-numeric field 'oops'"):
            load_csv(src, sampling_rate=1.0, label_column="name")
        src.write_text("a,b\n1,2\n\n3\n")
        with pytest.raises(StoreError, match="ragged rows: row 4 has 1 values"):
            load_csv(src, sampling_rate=1.0)

    def test_columns_layout_nan_names_lines(self, tmp_path: Path) -> None:
        src = tmp_path / "d.csv"
        src.write_text("time,ax\n0,1\n0.5,nan\n1.0,4\n")
        with pytest.raises(StoreError, match=r"NaN/Inf values on 1 lines \(line 3\)"):
            load_csv(src, layout="columns")


def test_ucr_nan_error_names_the_file_line(tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("1 1 2 3\n\n2 4 nan 6\n1 7 8 9\n")
    with pytest.raises(StoreError, match=r"\(row 1 channel 0\) on file line 3;"):
        import_file(src, tmp_path / "s.zarr", sampling_rate=1.0)


class TestUnreadableFiles:
    """Each bad file is one StoreError naming the file and the fix; numpy's pickle advice never
    leaks out."""

    @pytest.mark.parametrize("name", ["a.wav", "a.flac"])
    def test_text_named_as_audio(self, tmp_path: Path, name: str) -> None:
        (tmp_path / name).write_text("not audio\n")
        with pytest.raises(StoreError, match=rf"{name}: not a readable audio file .*looks like text"):
            import_file(tmp_path / name, tmp_path / "s.zarr")

    def test_empty_npy(self, tmp_path: Path) -> None:
        (tmp_path / "a.npy").write_bytes(b"")
        with pytest.raises(StoreError, match=r"a\.npy: the file is empty \(0 bytes\)"):
            import_file(tmp_path / "a.npy", tmp_path / "s.zarr", sampling_rate=1.0)

    def test_zero_length_array(self, tmp_path: Path) -> None:
        np.save(tmp_path / "a.npy", np.zeros((0, 1, 64)))
        with pytest.raises(StoreError, match=r"the array is empty, shape \(0, 1, 64\)"):
            import_file(tmp_path / "a.npy", tmp_path / "s.zarr", sampling_rate=1.0)

    def test_csv_as_npy_and_object_array_never_mention_pickle(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("1,2\n3,4\n")
        with pytest.raises(StoreError, match="suffix says csv: pass --format csv") as err:
            import_file(tmp_path / "a.csv", tmp_path / "s.zarr", format="npy", sampling_rate=1.0)
        np.save(tmp_path / "o.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
        with pytest.raises(StoreError, match="Python objects") as err2:
            import_file(tmp_path / "o.npy", tmp_path / "s.zarr", sampling_rate=1.0)
        assert "pickle" not in str(err.value) + str(err2.value)

    def test_truncated_npy(self, tmp_path: Path) -> None:
        np.save(tmp_path / "a.npy", np.arange(100.0).reshape(10, 10))
        data = (tmp_path / "a.npy").read_bytes()
        (tmp_path / "a.npy").write_bytes(data[:-50])
        with pytest.raises(StoreError, match="truncated or corrupt"):
            import_file(tmp_path / "a.npy", tmp_path / "s.zarr", sampling_rate=1.0)

    def test_npz_labels_and_rate_checked(self, tmp_path: Path) -> None:
        x = np.random.default_rng(0).normal(size=(4, 1, 8))
        np.savez(tmp_path / "a.npz", signals=x, labels=np.arange(3))
        with pytest.raises(StoreError, match=r"'labels' has shape \(3,\), expected \(4,\)"):
            import_file(tmp_path / "a.npz", tmp_path / "s.zarr", sampling_rate=1.0)
        np.savez(tmp_path / "a.npz", signals=x, labels=np.array([0.5, 1, 2, 3]))
        with pytest.raises(StoreError, match="'labels' must be whole numbers"):
            import_file(tmp_path / "a.npz", tmp_path / "s.zarr", sampling_rate=1.0)
        np.savez(tmp_path / "a.npz", signals=x, sampling_rate=np.array([1.0, 2.0]))
        with pytest.raises(StoreError, match="'sampling_rate' must be one number"):
            import_file(tmp_path / "a.npz", tmp_path / "s.zarr")
        np.savez(tmp_path / "a.npz", signals=x, sampling_rate=-3.0)
        with pytest.raises(StoreError, match="not a positive rate"):
            import_file(tmp_path / "a.npz", tmp_path / "s.zarr")

    def test_not_utf8_and_bad_gzip(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_bytes("tïme,x\n0,1\n".encode("latin-1"))
        with pytest.raises(StoreError, match="not UTF-8 text"):
            load_csv(tmp_path / "a.csv", sampling_rate=1.0)
        (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"1 2 3\n")[:-6])
        with pytest.raises(StoreError, match="not valid gzip data"):
            load_ucr(tmp_path / "a.txt.gz", sampling_rate=1.0)

    def test_transform_errors_name_the_file(self, tmp_path: Path) -> None:
        src = tmp_path / "d.txt"
        src.write_text(_ucr_text(["1", "2", "1"], ROWS))
        with pytest.raises(StoreError, match=r"d\.txt: recording of 4 samples is shorter"):
            import_file(src, tmp_path / "s.zarr", sampling_rate=1.0,
                         segmenting=Segmenting(window=8))
        with pytest.raises(StoreError, match=r"d\.txt: band-pass of order 4 needs signals longer"):
            import_file(src, tmp_path / "s.zarr", sampling_rate=100.0,
                         segmenting=Segmenting(band=(1.0, 10.0)))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d.txt"]
