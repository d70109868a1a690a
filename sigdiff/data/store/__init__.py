"""The sigdiff signal store: a zarr v3 group that `xarray.open_zarr` opens with named dimensions.

Layout (real data and generated samples alike)::

    signals   (sample, channel, time)  float32, compressed, chunked along samples
              (sample, channel, height, width) for images: one layout, a second spatial rank
    labels    (sample,)                int64, optional
    time      (time,)                  float64 seconds, coordinate
    channel   (channel,)               str, coordinate
    attrs     sampling_rate, units, channel_names, norm_mean, norm_std, n_samples, ... user attrs

An image store has no time coordinate and records ``sampling_rate`` 1 (one sample per pixel), so
every rank-agnostic reader treats it like a signal store; ``SignalStore.kind`` tells them apart.

Writes are atomic: everything goes to a hidden temporary directory beside the target
(``.NAME.tmp-PID-XXXXXXXX``), which is renamed onto the target name only after the last byte is
written; on any error the temporary directory is removed and nothing appears under the target
name. A local writer holds ``NAME.lock`` (`sigdiff._lock.folder_lock`) while it writes, so a second
writer of the same target is refused; under that lock it removes the temporaries of the same target
left by writers that were killed (their PID is gone), so a crash costs disk space only until the
next write.

Any fsspec URL works as a path (``s3://`` with ``pip install 'sigdiff[s3]'``, ``gs://`` with
gcsfs, ``memory://``). Object storage has no rename: the finished temporary store is copied onto
the target with its root ``zarr.json`` removed first and written last, so readers see the old
store, no store, or the new one, never a mixture. Remote targets are not locked and a killed
writer's temporary (``.NAME.tmp-PID-XXXXXXXX/``) is left for you to delete.
"""

from sigdiff.data.store._format import (
    DIMS,
    FORMAT_VERSION,
    KINDS,
    PIXEL_RATE,
    PathLike,
    StoreError,
    check_finite,
)
from sigdiff.data.store.reader import SignalStore, open_store, read_store
from sigdiff.data.store.split import split_store
from sigdiff.data.store.writer import StoreWriter, write_image_store, write_store

__all__ = [
    "DIMS",
    "FORMAT_VERSION",
    "KINDS",
    "PIXEL_RATE",
    "PathLike",
    "SignalStore",
    "StoreError",
    "StoreWriter",
    "check_finite",
    "open_store",
    "read_store",
    "split_store",
    "write_image_store",
    "write_store",
]
