"""Stores on object storage, against a real S3 API: moto's server on 127.0.0.1, s3fs as the
client, credentials and endpoint from the environment as a user would set them.

Round trips through `write_store`/`open_store`, the CLI train → sample → eval on s3:// URLs,
publication that never shows a half-written store, and the message for a missing filesystem
package."""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

from sigdiff.cli.main import cli  # noqa: E402

import sigdiff.data.store._location as location  # noqa: E402
from sigdiff.data.store import StoreError, StoreWriter, open_store, write_store  # noqa: E402

BUCKET = "sigdiff-test"
FS = 32.0  # Hz


def _sines(n: int, seed: int) -> np.ndarray:
    """(n, 1, 32) sines of 1-3 Hz at 32 Hz, amplitude 2, offset 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(32) / FS
    freq = rng.uniform(1, 3, size=(n, 1, 1))
    phase = rng.uniform(0, 6, size=(n, 1, 1))
    return (2.0 * np.sin(2 * np.pi * freq * t + phase) + 1.0).astype(np.float32)


def _s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3")


@pytest.fixture(scope="module")
def bucket() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, reached the way a user reaches MinIO or
    AWS: test credentials and the endpoint in the standard AWS variables; yields s3://BUCKET."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per HTTP request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # botocore reads AWS_ENDPOINT_URL whenever a client is made; fsspec reads
        # FSSPEC_S3_ENDPOINT_URL only once, on import (see test_fsspec_env_endpoint_...)
        mp.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        s3fs.S3FileSystem.clear_instance_cache()  # none may keep another endpoint
        _s3().mkdir(BUCKET)
        try:
            yield f"s3://{BUCKET}"
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def test_write_open_round_trip_equals_local(bucket: str, tmp_path: Path) -> None:
    x, labels = _sines(40, 0), np.arange(40) % 3
    attrs = {"source": "sines", "nested": {"a": [1, 2]}}
    url = f"{bucket}/round.zarr"
    local = write_store(tmp_path / "round.zarr", x, sampling_rate=FS, labels=labels,
                        channel_names=["v"], units="mV", attrs=attrs, chunk_samples=16)
    remote = write_store(url, x, sampling_rate=FS, labels=labels, channel_names=["v"],
                         units="mV", attrs=attrs, chunk_samples=16)
    again = open_store(url)
    assert again.path == remote.path == url
    np.testing.assert_array_equal(again.read(), local.read())
    np.testing.assert_array_equal(again.read([39, 0, 17, 17]), x[[39, 0, 17, 17]])
    np.testing.assert_array_equal(again.labels, local.labels)
    assert again.attrs == local.attrs and again.chunk_samples == 16
    names = _s3().find(f"{BUCKET}/")
    assert not [n for n in names if "/.round.zarr." in n]  # no temporary left beside it


def test_storage_options_instead_of_the_environment(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Library callers may pass endpoint and credentials as s3fs `storage_options`."""
    options = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"], "key": "testing",
               "secret": "testing"}
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    x, url = _sines(10, 9), f"{bucket}/options.zarr"
    write_store(url, x, sampling_rate=FS, storage_options=options)
    np.testing.assert_array_equal(open_store(url, storage_options=options).read(), x)


def test_cli_train_sample_eval_on_s3_urls(bucket: str, tmp_path: Path) -> None:
    train_url, holdout_url = f"{bucket}/train.zarr", f"{bucket}/holdout.zarr"
    samples_url = f"{bucket}/samples.zarr"
    write_store(train_url, _sines(48, 1), sampling_rate=FS)
    write_store(holdout_url, _sines(32, 2), sampling_rate=FS)
    run, report = tmp_path / "run", tmp_path / "report"

    def sigdiff(*args: str) -> str:
        res = CliRunner().invoke(cli, list(args))
        assert res.exit_code == 0, res.output + repr(res.exception)
        return res.output

    sigdiff("train", "--data", train_url, "--out", str(run), "--preset", "tiny", "--steps", "3",
            "--batch-size", "8", "--checkpoint-every", "3", "--quiet")
    assert json.loads((run / "config.json").read_text())["data"] == train_url
    out = sigdiff("sample", "--run", str(run), "--n", "16", "--out", samples_url, "--steps", "3",
                  "--quiet")
    assert f"wrote 16 samples to {samples_url}" in out
    samples = open_store(samples_url)
    assert (samples.n_samples, samples.n_channels, samples.spatial_shape) == (16, 1, (32,))
    assert samples.sampling_rate == FS and np.isfinite(samples.read()).all()
    assert samples.attrs["provenance"]["training_data"] == train_url
    sigdiff("eval", "--train", train_url, "--holdout", holdout_url, "--samples", samples_url,
            "--out", str(report), "--permutations", "5", "--extras", "", "--no-progress")
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["meta"]["stores"]["samples"] == samples_url
    figures = [v for table in ("memorization", "alignment_vs_holdout")
               for row in metrics[table].values() if isinstance(row, dict)
               for v in [row.get("generated")] if isinstance(v, int | float)]
    assert figures and all(math.isfinite(v) for v in figures)


def test_cli_data_split_and_info_keep_urls_whole(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{bucket}/full.zarr"
    write_store(url, _sines(20, 8), sampling_rate=FS, labels=np.arange(20) % 2)
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "split", url, "--holdout", "0.25", "--seed", "0"])
    assert res.exit_code == 0, res.output
    assert open_store(f"{bucket}/full.train.zarr").n_samples == 15  # not s3:/sigdiff-test/...
    assert open_store(f"{bucket}/full.holdout.zarr").split["source"] == url
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["data", "info", url])  # the figure: local, named after the store
    assert res.exit_code == 0, res.output
    assert (tmp_path / "full.info.png").stat().st_size > 0


def test_failed_writer_leaves_the_previous_store_or_nothing(bucket: str) -> None:
    old, new = _sines(20, 3), _sines(20, 4)
    kept, fresh = f"{bucket}/kept.zarr", f"{bucket}/fresh.zarr"
    write_store(kept, old, sampling_rate=FS)
    for url in (kept, fresh):
        with (pytest.raises(RuntimeError, match="died"),
              StoreWriter(url, n_channels=1, length=32, sampling_rate=FS, overwrite=True) as w):
            w.append(new[:10])
            raise RuntimeError("writer died mid-write")
    np.testing.assert_array_equal(open_store(kept).read(), old)
    s3 = _s3()
    s3.invalidate_cache()
    assert not s3.exists(f"{BUCKET}/fresh.zarr")
    with pytest.raises(StoreError, match="not a sigdiff store"):
        open_store(fresh)
    assert not [n for n in s3.find(f"{BUCKET}/") if ".tmp-" in n]  # temporaries removed


class _Died(BaseException):
    """A writer's death as the store sees it: nothing after the kill point runs (no `except
    Exception` handles it; the `finally` that removes the temporary does, unlike after SIGKILL)."""


def test_writer_dying_while_publishing_leaves_no_half_store(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 has no rename: publication copies every object, the root metadata last. A writer that
    dies after the data objects and before that one leaves no store at all at the target, never
    a mixture of the old and the new; the next overwrite replaces the leftovers."""
    url = f"{bucket}/killed.zarr"
    write_store(url, _sines(20, 5), sampling_rate=FS)

    def die(point: str) -> None:  # `SIGDIFF_KILL_AT=store.publishing`, without a child process
        if point == "store.publishing":
            raise _Died

    monkeypatch.setattr(location, "kill_point", die)
    with pytest.raises(_Died):
        write_store(url, _sines(8, 6), sampling_rate=FS, overwrite=True)
    s3 = _s3()
    s3.invalidate_cache()
    assert s3.exists(f"{BUCKET}/killed.zarr/signals/zarr.json")  # the new data objects...
    assert not s3.exists(f"{BUCKET}/killed.zarr/zarr.json")  # ...without a root: not a store
    with pytest.raises(StoreError, match="not a sigdiff store"):
        open_store(url)
    monkeypatch.undo()
    x = _sines(12, 7)
    write_store(url, x, sampling_rate=FS, overwrite=True)
    np.testing.assert_array_equal(open_store(url).read(), x)


def test_fsspec_env_endpoint_reaches_the_server(bucket: str) -> None:
    """The fsspec spelling of the endpoint, FSSPEC_S3_ENDPOINT_URL (read when fsspec is
    imported, so set before the process starts), instead of AWS_ENDPOINT_URL; plain zarr opens
    a sigdiff store."""
    url = f"{bucket}/plain.zarr"
    write_store(url, _sines(6, 7), sampling_rate=FS)
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["FSSPEC_S3_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
    code = ("import sys, zarr; g = zarr.open_group(sys.argv[1], mode='r'); "
            "print(g['signals'].shape, g.attrs['sampling_rate'])")
    child = subprocess.run([sys.executable, "-c", code, url], env=env, capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["(6,", "1,", "32)", "32.0"]


def test_missing_filesystem_package_says_what_to_install(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{bucket}/round.zarr"
    # s3fs made unimportable, as in an install without the s3 extra
    monkeypatch.setitem(sys.modules, "s3fs", None)
    registry = importlib.import_module("fsspec.registry")  # `fsspec.registry` is the mapping
    monkeypatch.delitem(registry._registry, "s3", raising=False)
    with pytest.raises(StoreError, match=r"s3:// URLs need .*pip install 'sigdiff\[s3\]'"):
        open_store(url)
    for args in (["data", "info", url, "--no-png"],
                 ["train", "--data", url, "--out", str(tmp_path / "run"), "--preset", "tiny"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 1, res.output
        assert "pip install 'sigdiff[s3]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(StoreError, match="pip install gcsfs"):
            write_store("gs://bucket/x.zarr", _sines(4, 0), sampling_rate=FS)


def test_run_and_report_folders_must_be_local(bucket: str) -> None:
    res = CliRunner().invoke(cli, ["eval", "--train", f"{bucket}/a.zarr", "--holdout",
                                   f"{bucket}/b.zarr", "--samples", f"{bucket}/c.zarr",
                                   "--out", f"{bucket}/report"])
    assert res.exit_code == 1 and "must be a local (or shared) folder" in res.output
    assert "Traceback" not in res.output


def test_sweep_reads_its_data_from_s3_urls(bucket: str, tmp_path: Path) -> None:
    """A sweep's [data] may name stores by URL: cells train on and are evaluated against the
    stores in the bucket, and the URLs stay whole in the cell configs."""
    from sigdiff.sweep import run_sweep, sweep_from_dict

    train_url, holdout_url = f"{bucket}/sweep-train.zarr", f"{bucket}/sweep-holdout.zarr"
    write_store(train_url, _sines(48, 3), sampling_rate=FS)
    write_store(holdout_url, _sines(32, 4), sampling_rate=FS)
    sweep = sweep_from_dict({
        "name": "s3", "seeds": [0], "train_subsets": [8],
        "data": {"train": train_url, "holdout": holdout_url},
        "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 4, "log_every": 4,
                  "model": {"name": "unet", "preset": "tiny"}, "optim": {"warmup_steps": 1}},
        "eval": {"n_samples": 8, "sampler_steps": 2},
        "arm": [{"label": "uniform"}]}, base_dir=tmp_path)
    assert sweep.cells[0].config.data == train_url
    rows = run_sweep(sweep, tmp_path / "out", progress=False)
    assert [r["step"] for r in rows] == [4]
    figures = [v for k, v in rows[0].items() if k.startswith("memorization.") and "@" not in k]
    assert len(figures) >= 2 and all(math.isfinite(v) for v in figures)
    saved = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert saved["cells"]["uniform__n8__s0"]["data"] == train_url
