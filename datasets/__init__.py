"""sigdiff's dataset catalog (`sigdiff.datasets`): `CATALOG`, `load_dataset`, `make_dataset`."""

from sigdiff.datasets.catalog import CATALOG, CatalogEntry, load_dataset, make_dataset

__all__ = ["CATALOG", "CatalogEntry", "load_dataset", "make_dataset"]
