"""Signal transforms applied before storing: windows, beat segments, resampling, band-pass."""

from __future__ import annotations

import numpy as np
import scipy.signal
import torch
import torchaudio.functional

__all__ = ["bandpass", "beat_segments", "detect_r_peaks", "resample", "windows"]


def windows(x: np.ndarray, *, length: int, hop: int | None = None) -> np.ndarray:
    """Cut a recording (C, T) into windows (n, C, length) starting every `hop` samples."""
    hop = length if hop is None else hop
    if x.ndim != 2:
        raise ValueError(f"windows expects a recording (C, T), got shape {x.shape}")
    if length <= 0 or hop <= 0:
        raise ValueError(f"window length and hop must be positive, got {length}, {hop}")
    if x.shape[1] < length:
        raise ValueError(f"recording of {x.shape[1]} samples is shorter than one window ({length})")
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=1)  # (C, T-length+1, length)
    return np.ascontiguousarray(view[:, ::hop].transpose(1, 0, 2))  # (n, C, length)


def resample(x: np.ndarray, *, orig_rate: float, new_rate: float) -> np.ndarray:
    """Band-limited resampling along the last axis (torchaudio's windowed-sinc resampler)."""
    if orig_rate == new_rate:
        return x
    num, den = _as_ratio(new_rate), _as_ratio(orig_rate)
    out = torchaudio.functional.resample(
        torch.from_numpy(np.ascontiguousarray(x, np.float32)), den, num
    )
    return out.numpy()


def _as_ratio(rate: float) -> int:
    """Rates must be whole numbers of Hz for torchaudio's rational resampler."""
    if rate != int(rate) or rate <= 0:
        raise ValueError(f"resampling needs whole positive rates in Hz, got {rate}")
    return int(rate)


def bandpass(
    x: np.ndarray, *, sampling_rate: float, low: float, high: float, order: int = 4
) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (scipy `sosfiltfilt`)."""
    nyquist = sampling_rate / 2
    if not 0 < low < high < nyquist:
        raise ValueError(
            f"band-pass needs 0 < low < high < Nyquist ({nyquist} Hz), got {low}, {high}"
        )
    sos = scipy.signal.butter(order, [low, high], btype="bandpass", fs=sampling_rate, output="sos")
    # sosfiltfilt's default edge padding (scipy.signal.sosfiltfilt, padtype "odd")
    padlen = 3 * (2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum())))
    if x.shape[-1] <= padlen:
        raise ValueError(
            f"band-pass of order {order} needs signals longer than {padlen} samples, got "
            f"{x.shape[-1]}; band-pass longer recordings (before --window) or drop --bandpass"
        )
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def detect_r_peaks(ecg: np.ndarray, *, sampling_rate: float) -> np.ndarray:
    """R-peak sample indices of a 1-channel ECG (T,): 5-30 Hz band-pass, then peaks at least
    0.25 s apart and above half the 99th percentile (a simplified Pan & Tompkins 1985 detector)."""
    filtered = bandpass(
        ecg, sampling_rate=sampling_rate, low=5.0, high=min(30.0, sampling_rate / 2.5)
    )
    energy = filtered**2
    peaks, _ = scipy.signal.find_peaks(
        energy, distance=max(1, int(0.25 * sampling_rate)), height=0.5 * np.percentile(energy, 99)
    )
    return peaks


def beat_segments(
    x: np.ndarray,
    *,
    sampling_rate: float,
    before: float = 0.25,
    after: float = 0.45,
    lead: int = 0,
) -> np.ndarray:
    """Beat-aligned segments (n, C, L) of a recording (C, T): from `before` s ahead of each R peak
    (detected on channel `lead`) to `after` s past it; beats too near the ends are dropped."""
    peaks = detect_r_peaks(x[lead], sampling_rate=sampling_rate)
    b, a = round(before * sampling_rate), round(after * sampling_rate)
    keep = peaks[(peaks >= b) & (peaks + a <= x.shape[1])]
    if keep.size == 0:
        raise ValueError("no complete beats found; check the lead and the sampling rate")
    return np.stack([x[:, p - b : p + a] for p in keep])
