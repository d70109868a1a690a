"""The generated data set of the guard/controller comparison (issue 14): 500 TimeGAN sines
(5 channels x 24 steps, generator seed 0: the catalog's `sines` generator at the size of the
embedded ECG5000 split), split 80/20 (seed 0) into data/train.zarr and data/holdout.zarr.

    python docs/results/guard-controller-sines/make_data.py   # then run the sweep (sweep.toml)
"""

from pathlib import Path

from sigdiff.data.store import split_store, write_store
from sigdiff.data.synthetic import sines

here = Path(__file__).resolve().parent / "data"
if not (here / "holdout.zarr").exists():
    d = sines(n=500, length=24, channels=5, seed=0)
    write_store(here / "full.zarr", d.signals, sampling_rate=d.sampling_rate, overwrite=True,
                attrs={**d.attrs, "n": 500})
    split_store(here / "full.zarr", holdout=0.2, seed=0, out_train=here / "train.zarr",
                out_holdout=here / "holdout.zarr", overwrite=True)
print(f"train {here / 'train.zarr'}, holdout {here / 'holdout.zarr'}")
