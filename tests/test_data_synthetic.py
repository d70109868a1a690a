"""Synthetic generators against closed forms: sine recurrences, ECG heart rate and R-peak timing,
bearing fault frequencies in the envelope spectrum (Randall & Antoni 2011)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from sigdiff.data.synthetic import (
    ECGParams,
    VibrationParams,
    bearing_fault_frequencies,
    ecgsyn,
    sines,
    vibration,
)
from sigdiff.data.transforms import detect_r_peaks


def test_sines_are_pure_sinusoids_in_timegan_ranges() -> None:
    data = sines(n=50, length=24, channels=3, seed=4)
    s = 2.0 * data.signals.astype(np.float64) - 1  # sin(f j + φ)
    # closed form: s(j+1) + s(j-1) = 2 cos(f) s(j) for every j
    two_cos = (s[..., 2:] + s[..., :-2]) / s[..., 1:-1]
    f = np.arccos(np.median(two_cos, axis=-1) / 2)
    np.testing.assert_allclose(two_cos - 2 * np.cos(f)[..., None], 0.0, atol=1e-3)
    assert f.min() >= 0 and f.max() <= 0.1 + 1e-3
    phase = np.arcsin(s[..., 0])
    assert phase.min() >= -1e-6 and phase.max() <= 0.1 + 1e-6
    np.testing.assert_array_equal(sines(n=50, length=24, channels=3, seed=4).signals, data.signals)


@pytest.mark.parametrize(("hr", "rate"), [(60.0, 256.0), (110.0, 500.0)])
def test_ecgsyn_heart_rate_and_qrs_timing(hr: float, rate: float) -> None:
    params = ECGParams(heart_rate=hr, heart_rate_std=1.0)
    data = ecgsyn(n=3, length=int(12 * rate), sampling_rate=rate, params=params, seed=7)
    assert data.signals.shape == (3, 1, int(12 * rate)) and data.sampling_rate == rate
    for i, ecg in enumerate(data.signals[:, 0]):
        detected = detect_r_peaks(ecg, sampling_rate=rate) / rate
        true = np.asarray(data.attrs["r_peaks_s"][i])
        # a beat cut by the record's start or end has no θ = 0 crossing inside it: skip edges
        detected, true = (v[(v > 0.1) & (v < 11.9)] for v in (detected, true))
        assert len(detected) == len(true)
        np.testing.assert_allclose(detected, true, atol=2.5 / rate)  # QRS within 2.5 samples
        assert 60.0 / np.diff(detected).mean() == pytest.approx(hr, rel=0.03)
    assert data.signals.min() == pytest.approx(-0.4, abs=0.05)  # ecgsyn.m scaling + noise
    assert data.signals.max() == pytest.approx(1.2, abs=0.05)


def test_ecgsyn_deterministic() -> None:
    a = ecgsyn(n=2, length=512, seed=1).signals
    np.testing.assert_array_equal(a, ecgsyn(n=2, length=512, seed=1).signals)
    assert not np.array_equal(a, ecgsyn(n=2, length=512, seed=2).signals)


def _envelope_peak(x: np.ndarray, fs: float, lo: float, hi: float) -> float:
    sos = scipy.signal.butter(4, [2000, 4000], btype="bandpass", fs=fs, output="sos")
    env = np.abs(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, x)))
    spec = np.abs(np.fft.rfft(env - env.mean()))
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    band = (freqs >= lo) & (freqs <= hi)
    return float(freqs[band][np.argmax(spec[band])])


def test_fault_frequencies_cwru_6205() -> None:
    f = bearing_fault_frequencies(VibrationParams())
    shaft = VibrationParams().shaft_hz  # published multiples for the 6205: 3.5848, 5.4152, 2.357
    assert f["outer_race"] / shaft == pytest.approx(3.5848, abs=1e-3)
    assert f["inner_race"] / shaft == pytest.approx(5.4152, abs=1e-3)
    assert f["ball"] / shaft == pytest.approx(2.357, abs=1e-3)


def test_vibration_fault_frequency_in_envelope_spectrum() -> None:
    fs = 12000.0
    data = vibration(n=4, length=24000, sampling_rate=fs, seed=0)  # 2 s: 0.5 Hz resolution
    f = data.attrs["fault_frequencies_hz"]
    np.testing.assert_array_equal(data.labels, [0, 1, 2, 3])
    for label, kind in [(1, "inner_race"), (2, "outer_race"), (3, "ball")]:
        peak = _envelope_peak(data.signals[label, 0].astype(np.float64), fs, 40, 300)
        assert peak == pytest.approx(f[kind], abs=2.0), kind
