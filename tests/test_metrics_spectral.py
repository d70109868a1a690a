"""Spectral metrics against scipy.signal and closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sigdiff.metrics.spectral import (
    band_power_errors,
    log_spectral_distance,
    spectral_report,
    welch_psd,
)

FS = 250.0


def _sines(freq: float, *, n: int = 20, channels: int = 1, length: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / FS
    phase = rng.uniform(0, 2 * np.pi, size=(n, channels, 1))
    return np.sin(2 * np.pi * freq * t + phase) + 0.05 * rng.normal(size=(n, channels, length))


def test_welch_matches_scipy_with_store_rate() -> None:
    x = _sines(10.0, channels=2)
    freqs, psd = welch_psd(x, sampling_rate=FS, nperseg=128)
    f_ref, p_ref = signal.welch(x, fs=FS, nperseg=128, axis=-1)
    np.testing.assert_allclose(freqs, f_ref)
    np.testing.assert_allclose(psd, p_ref)
    assert freqs[-1] == FS / 2


def test_identical_sets_have_zero_distances() -> None:
    x = _sines(10.0, channels=2)
    rep = spectral_report(x, x, sampling_rate=FS)
    assert rep["log_spectral_distance_db"] == 0.0
    assert rep["wasserstein_fourier_hz"] == pytest.approx(0.0, abs=1e-9)
    assert rep["coherence_abs_diff"] == 0.0
    assert all(v == 0.0 for v in rep["band_power_rel_error"].values() if v is not None)


def test_wasserstein_fourier_tracks_a_frequency_shift() -> None:
    a = _sines(10.0, seed=1)
    near = spectral_report(a, _sines(12.0, seed=2), sampling_rate=FS)["wasserstein_fourier_hz"]
    far = spectral_report(a, _sines(30.0, seed=2), sampling_rate=FS)["wasserstein_fourier_hz"]
    assert near == pytest.approx(2.0, abs=0.5)
    assert far == pytest.approx(20.0, abs=1.5)


def test_band_power_error_sees_power_move_between_bands() -> None:
    ref, gen = _sines(5.0), _sines(20.0)
    freqs, p_ref = welch_psd(ref, sampling_rate=FS)
    _, p_gen = welch_psd(gen, sampling_rate=FS)
    err = band_power_errors(freqs, p_ref.mean(0), p_gen.mean(0),
                            bands={"p_t": (0.5, 10.0), "qrs": (10.0, 40.0), "above": (200, 300)})
    assert err["p_t"] > 0.9 and err["qrs"] > 10 and err["above"] is None


def test_log_spectral_distance_of_a_gain() -> None:
    psd = np.abs(np.random.default_rng(0).normal(size=(2, 50))) + 0.1
    assert log_spectral_distance(4.0 * psd, psd) == pytest.approx(10 * np.log10(4.0), rel=1e-6)


def test_coherence_difference_for_multichannel() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 1, 256))
    coupled = np.concatenate([base, base + 0.1 * rng.normal(size=base.shape)], axis=1)
    independent = rng.normal(size=(40, 2, 256))
    assert spectral_report(coupled, independent, sampling_rate=FS)["coherence_abs_diff"] > 0.5
    assert spectral_report(base, base, sampling_rate=FS)["coherence_abs_diff"] is None


def test_rejects_bad_rate() -> None:
    with pytest.raises(ValueError, match="sampling_rate must be positive"):
        welch_psd(_sines(5.0), sampling_rate=0.0)


def test_default_bands_follow_the_sampling_rate_and_the_kind() -> None:
    from sigdiff.metrics.spectral import ECG_BANDS, default_bands, signal_kind

    assert default_bands(1000.0, kind="ecg") == dict(ECG_BANDS)
    # 250 Hz: the ECG "high" band is clipped at Nyquist (125 Hz)
    assert default_bands(250.0, kind="ecg")["high"] == (40.0, 125.0)
    # 50 Hz IMU: no ECG band names; octave bands below Nyquist (25 Hz), edges in Hz
    imu = default_bands(50.0)
    assert list(imu.values()) == [(0.0, 25 / 16), (25 / 16, 25 / 8), (25 / 8, 25 / 4),
                                  (25 / 4, 12.5), (12.5, 25.0)]
    assert "qrs" not in imu
    assert signal_kind({"dataset": "ecg5000"}) == "ecg"
    assert signal_kind({"channel_names": ["ECG lead II"]}) == "ecg"
    assert signal_kind({"channel_names": ["acc_x", "acc_y"]}) == "generic"
    with pytest.raises(ValueError, match="unknown signal kind 'eeg'"):
        default_bands(100.0, kind="eeg")


def test_top_band_includes_the_nyquist_bin() -> None:
    from sigdiff.metrics.spectral import band_powers

    freqs = np.linspace(0.0, 25.0, 26)
    psd = np.ones((1, 26))
    got = band_powers(freqs, psd, bands={"top": (20.0, 25.0)})["top"]
    assert got is not None and float(got[0]) == pytest.approx(5.0)  # ∫ 1 df over [20, 25]
