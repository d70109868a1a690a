"""Post-hoc discriminative and predictive scores, defined so they work for one channel.

TimeGAN's originals (Yoon et al. 2019) run a GRU over the feature axis, which degenerates when
there is one channel. Here each record is one example: the discriminator sees the whole series
(all channels and times), and the predictor forecasts the last `horizon` steps of every channel
from the steps before them.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.3
HORIZON_FRACTION = 0.1  # predictive score: forecast the last 10% of each series
RIDGE_ALPHA = 1.0
FOREST_TREES = 100
MAX_PER_CLASS = 2000  # discriminator examples per class (seeded subsample)


def _features(x: np.ndarray) -> np.ndarray:
    """Raw values plus log magnitude spectrum, flattened: (N, C*L + C*(L//2+1))."""
    spec = np.log1p(np.abs(np.fft.rfft(x, axis=-1)))
    return np.concatenate([x.reshape(len(x), -1), spec.reshape(len(x), -1)], axis=1)


def discriminative_score(real: np.ndarray, fake: np.ndarray, *, seed: int = 0) -> float:
    """|accuracy − 0.5| of a random-forest classifier telling real from fake on held-out pairs.

    Both sets are subsampled to the same size (at most MAX_PER_CLASS) so chance accuracy is 0.5;
    0 is indistinguishable.
    """
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake), MAX_PER_CLASS)
    r = real[rng.choice(len(real), n, replace=False)]
    f = fake[rng.choice(len(fake), n, replace=False)]
    x = _features(np.concatenate([r, f]))
    y = np.r_[np.zeros(n), np.ones(n)]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y)
    clf = RandomForestClassifier(FOREST_TREES, random_state=seed).fit(x_tr, y_tr)
    return float(abs(clf.score(x_te, y_te) - 0.5))


def predictive_score(train_on: np.ndarray, test_on: np.ndarray) -> float:
    """Train-on-synthetic-test-on-real MAE of a ridge forecaster of the last `horizon` steps."""
    length = train_on.shape[-1]
    h = max(1, round(HORIZON_FRACTION * length))

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[..., :-h].reshape(len(x), -1), x[..., -h:].reshape(len(x), -1)

    x_tr, y_tr = split(train_on)
    x_te, y_te = split(test_on)
    model = Ridge(alpha=RIDGE_ALPHA).fit(x_tr, y_tr)
    return float(np.mean(np.abs(model.predict(x_te) - y_te)))
