"""Transforms against closed forms: windows by slicing, resampling and band-pass on pure tones."""

from __future__ import annotations

import numpy as np
import pytest

from sigdiff.data.synthetic import ecgsyn
from sigdiff.data.transforms import bandpass, beat_segments, resample, windows


def test_windows_equal_slices() -> None:
    x = np.arange(2 * 20, dtype=np.float32).reshape(2, 20)
    w = windows(x, length=6, hop=4)
    assert w.shape == (4, 2, 6)
    for k in range(4):
        np.testing.assert_array_equal(w[k], x[:, 4 * k : 4 * k + 6])
    with pytest.raises(ValueError, match="shorter than one window"):
        windows(x, length=21)


def test_resample_pure_tone() -> None:
    t_in, t_out = np.arange(400) / 100.0, np.arange(1000) / 250.0
    x = np.sin(2 * np.pi * 5 * t_in)[None].astype(np.float32)
    y = resample(x, orig_rate=100, new_rate=250)
    assert y.shape == (1, 1000)
    np.testing.assert_allclose(y[0, 100:-100], np.sin(2 * np.pi * 5 * t_out)[100:-100], atol=1e-2)
    with pytest.raises(ValueError, match="whole positive"):
        resample(x, orig_rate=100.5, new_rate=250)


def test_bandpass_keeps_band_rejects_outside() -> None:
    fs = 1000.0
    t = np.arange(4000) / fs
    inside, outside = np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 300 * t)
    y = bandpass(inside + outside, sampling_rate=fs, low=20, high=80)
    core = slice(500, -500)
    np.testing.assert_allclose(y[core], inside[core], atol=2e-2)
    with pytest.raises(ValueError, match="Nyquist"):
        bandpass(inside, sampling_rate=fs, low=20, high=600)


def test_beat_segments_centre_r_peak() -> None:
    rate = 250.0
    data = ecgsyn(n=1, length=int(8 * rate), sampling_rate=rate, seed=3)
    beats = beat_segments(data.signals[0], sampling_rate=rate, before=0.2, after=0.4)
    assert beats.shape[1:] == (1, 150) and 6 <= len(beats) <= 8
    assert np.all(np.abs(np.argmax(beats[:, 0], axis=1) - 50) <= 2)  # R at `before` seconds


def test_bandpass_too_short_says_how_long() -> None:
    with pytest.raises(ValueError, match="needs signals longer than 27 samples, got 20"):
        bandpass(np.zeros((1, 20)), sampling_rate=100.0, low=1.0, high=10.0)
