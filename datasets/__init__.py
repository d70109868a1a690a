"""sigdiff's dataset catalog (`sigdiff.datasets`): `CATALOG`, `load_dataset`, `make_dataset`,
`make_split`."""

from sigdiff.datasets.catalog import CATALOG, CatalogEntry, load_dataset, make_dataset, make_split

__all__ = ["CATALOG", "CatalogEntry", "load_dataset", "make_dataset", "make_split"]
