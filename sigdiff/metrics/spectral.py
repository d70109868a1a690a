"""Spectral alignment from Welch power spectra at the store's sampling rate.

Log-spectral distance, the Wasserstein-Fourier distance (Cazelles et al. 2021: W2 between
normalised spectra read as densities over frequency), band-power errors for named bands, and
cross-channel coherence differences for multichannel data. Each compares the *mean* spectrum of
one set of records (N, C, L) with that of another.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
from scipy import signal

from .alignment import wasserstein_1d

# ECG bands in Hz: baseline wander, P/T waves, QRS complex, muscle/mains noise. A band above the
# Nyquist frequency is reported as None.
ECG_BANDS: Mapping[str, tuple[float, float]] = {
    "baseline": (0.0, 0.5),
    "p_t_waves": (0.5, 10.0),
    "qrs": (10.0, 40.0),
    "high": (40.0, 150.0),
}
#: Generic bands as fractions of the Nyquist frequency (octaves below it), for signals that are
#: not ECG: named by their edges in Hz once the sampling rate is known.
NYQUIST_OCTAVES = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
WELCH_MAX_NPERSEG = 256
PSD_FLOOR = 1e-12  # relative to the peak power: keeps log10 finite on empty bins


def signal_kind(attrs: Mapping[str, object]) -> str:
    """'ecg' when a store's dataset or channel names say so, else 'generic'."""
    names = [str(attrs.get("dataset", "")), *map(str, attrs.get("channel_names") or [])]  # type: ignore[call-overload]
    return "ecg" if any("ecg" in n.lower() for n in names) else "generic"


def default_bands(sampling_rate: float, *, kind: str = "generic") -> dict[str, tuple[float, float]]:
    """Bands that follow the sampling rate: the ECG bands (clipped at Nyquist, a band above it
    dropped) for ECG, else octave bands below Nyquist named by their edges in Hz."""
    nyquist = sampling_rate / 2.0
    if kind == "ecg":
        return {name: (lo, min(hi, nyquist)) for name, (lo, hi) in ECG_BANDS.items()
                if lo < nyquist}
    if kind != "generic":
        raise ValueError(f"spectral: unknown signal kind {kind!r}; valid choices: ecg, generic")
    edges = [f * nyquist for f in NYQUIST_OCTAVES]
    return {f"{lo:.3g}-{hi:.3g}Hz": (lo, hi) for lo, hi in itertools.pairwise(edges)}


def welch_psd(
    x: np.ndarray, *, sampling_rate: float, nperseg: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of every record and channel: freqs (F,), psd (N, C, F)."""
    if sampling_rate <= 0:
        raise ValueError(f"spectral: sampling_rate must be positive; got {sampling_rate}")
    seg = nperseg or min(x.shape[-1], WELCH_MAX_NPERSEG)
    return signal.welch(x, fs=sampling_rate, nperseg=seg, axis=-1)


def log_spectral_distance(psd_a: np.ndarray, psd_b: np.ndarray) -> float:
    """RMS over frequency of 10·log10(P_a / P_b) in dB, averaged over channels; inputs (C, F)."""
    floor = PSD_FLOOR * max(psd_a.max(), psd_b.max())
    ratio_db = 10.0 * np.log10((psd_a + floor) / (psd_b + floor))  # (C, F)
    return float(np.mean(np.sqrt(np.mean(ratio_db**2, axis=-1))))


def wasserstein_fourier(freqs: np.ndarray, psd_a: np.ndarray, psd_b: np.ndarray) -> float:
    """W2 (in Hz) between the normalised spectra (C, F) as densities on `freqs`, channel mean."""
    per = [np.sqrt(wasserstein_1d(freqs, freqs, u_weights=a, v_weights=b, p=2.0))
           for a, b in zip(psd_a, psd_b)]
    return float(np.mean(per))


def band_powers(
    freqs: np.ndarray, psd: np.ndarray, *, bands: Mapping[str, tuple[float, float]]
) -> dict[str, np.ndarray | None]:
    """Power in each band (integrated PSD, per channel), None for a band above Nyquist."""
    out: dict[str, np.ndarray | None] = {}
    for name, (lo, hi) in bands.items():
        mask = (freqs >= lo) & (freqs < hi)
        if hi >= freqs[-1]:  # the top band includes the Nyquist bin
            mask |= freqs == freqs[-1]
        out[name] = np.trapezoid(psd[..., mask], freqs[mask], axis=-1) if mask.sum() > 1 else None
    return out


def band_power_errors(
    freqs: np.ndarray, psd_ref: np.ndarray, psd_gen: np.ndarray, *,
    bands: Mapping[str, tuple[float, float]],
) -> dict[str, float | None]:
    """Relative band-power error |P_gen − P_ref| / P_ref per band, mean over channels."""
    ref, gen = band_powers(freqs, psd_ref, bands=bands), band_powers(freqs, psd_gen, bands=bands)
    out: dict[str, float | None] = {}
    for name in bands:
        r, g = ref[name], gen[name]
        out[name] = None if r is None or g is None else float(np.mean(np.abs(g - r) / r))
    return out


def mean_coherence(x: np.ndarray, *, sampling_rate: float, nperseg: int | None = None) -> np.ndarray:
    """Magnitude-squared coherence per channel pair i<j (P, F), cross-spectra averaged over records."""
    seg = nperseg or min(x.shape[-1], WELCH_MAX_NPERSEG)
    _, pxx = signal.welch(x, fs=sampling_rate, nperseg=seg, axis=-1)
    pxx = pxx.mean(axis=0)  # (C, F)
    pairs = [(i, j) for i in range(x.shape[1]) for j in range(i + 1, x.shape[1])]
    coh = []
    for i, j in pairs:
        _, pxy = signal.csd(x[:, i], x[:, j], fs=sampling_rate, nperseg=seg, axis=-1)
        coh.append(np.abs(pxy.mean(axis=0)) ** 2 / (pxx[i] * pxx[j]))
    return np.array(coh)


def spectral_report(
    reference: np.ndarray, generated: np.ndarray, *, sampling_rate: float,
    bands: Mapping[str, tuple[float, float]] = ECG_BANDS, nperseg: int | None = None,
) -> dict[str, object]:
    """All spectral figures of `generated` against `reference` (both (N, C, L))."""
    freqs, p_ref = welch_psd(reference, sampling_rate=sampling_rate, nperseg=nperseg)
    _, p_gen = welch_psd(generated, sampling_rate=sampling_rate, nperseg=nperseg)
    m_ref, m_gen = p_ref.mean(axis=0), p_gen.mean(axis=0)  # (C, F)
    report: dict[str, object] = {
        "log_spectral_distance_db": log_spectral_distance(m_gen, m_ref),
        "wasserstein_fourier_hz": wasserstein_fourier(freqs, m_gen, m_ref),
        "band_power_rel_error": band_power_errors(freqs, m_ref, m_gen, bands=bands),
        "coherence_abs_diff": None,
    }
    if reference.shape[1] > 1:
        c_ref = mean_coherence(reference, sampling_rate=sampling_rate, nperseg=nperseg)
        c_gen = mean_coherence(generated, sampling_rate=sampling_rate, nperseg=nperseg)
        report["coherence_abs_diff"] = float(np.mean(np.abs(c_gen - c_ref)))
    return report
