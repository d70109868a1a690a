"""Signal data: the zarr store, importers, transforms, synthetic generators and torch datasets."""

from sigdiff.data.dataset import ChunkedSignalDataset, Normalizer, SignalDataset
from sigdiff.data.importers import IMPORTERS, Imported, Segmenting, import_file
from sigdiff.data.store import (
    SignalStore,
    StoreError,
    StoreWriter,
    open_store,
    read_store,
    split_store,
    write_store,
)

__all__ = [
    "IMPORTERS",
    "ChunkedSignalDataset",
    "Imported",
    "Normalizer",
    "Segmenting",
    "SignalDataset",
    "SignalStore",
    "StoreError",
    "StoreWriter",
    "import_file",
    "open_store",
    "read_store",
    "split_store",
    "write_store",
]
