"""Synthetic signal generators, deterministic by seed: sines, ECGSYN and bearing vibration.

Each returns an `Imported` (signals (N, C, L) float32, labels or None, sampling rate, attrs with
the generator's parameters), the same record the file importers produce.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from sigdiff.data.importers import Imported

__all__ = [
    "ECGParams",
    "VibrationParams",
    "bearing_fault_frequencies",
    "ecgsyn",
    "rr_process",
    "sines",
    "vibration",
]


# ------------------------------------------------------------------------------------------
# sines (TimeGAN, Yoon et al. 2019; reused by Diffusion-TS, Yuan & Qiao 2024)


def sines(*, n: int, length: int = 24, channels: int = 5, seed: int = 0) -> Imported:
    """TimeGAN's `sine_data_generation`: x_c(j) = sin(f_c·j + φ_c), f, φ ~ U(0, 0.1) per sample
    and channel, mapped to [0, 1] by (x + 1)/2; time is in steps (sampling rate 1)."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0, 0.1, size=(n, channels, 1))
    phase = rng.uniform(0, 0.1, size=(n, channels, 1))
    x = (np.sin(freq * np.arange(length) + phase) + 1) * 0.5  # (N, C, L)
    attrs = {"generator": "sines", "seed": seed, "reference": "Yoon et al. 2019 (TimeGAN)"}
    return Imported(
        x.astype(np.float32), None, 1.0, "generator: one sample per step", "sines", attrs=attrs
    )


# ------------------------------------------------------------------------------------------
# ECGSYN: McSharry, Clifford, Tarassenko, Smith, "A dynamical model for generating synthetic
# electrocardiogram signals", IEEE Trans. Biomed. Eng. 50(3), 2003.


@dataclass(frozen=True)
class ECGParams:
    """ECGSYN parameters; defaults are Table 1 of McSharry et al. (2003) and ecgsyn.m."""

    heart_rate: float = 60.0  # mean, beats per minute
    heart_rate_std: float = 1.0  # bpm
    lf_hf_ratio: float = 0.5  # Mayer-wave / RSA power ratio
    f_lf: float = 0.1  # Hz, Mayer waves
    f_hf: float = 0.25  # Hz, respiratory sinus arrhythmia (also the respiration rate)
    c_lf: float = 0.01  # Hz, spectral widths
    c_hf: float = 0.01
    # A of the respiratory baseline wander z0(t) = A sin(2π f_hf t), in the model's own units as
    # in ecgsyn.m (zbase = 0.005); the paper's 0.15 mV after scaling z to [-0.4, 1.2] mV
    baseline: float = 0.005
    noise_mv: float = 0.01  # std of additive Gaussian noise
    theta: tuple[float, ...] = (-math.pi / 3, -math.pi / 12, 0.0, math.pi / 12, math.pi / 2)
    a: tuple[float, ...] = (1.2, -5.0, 30.0, -7.5, 0.75)  # P Q R S T
    b: tuple[float, ...] = (0.25, 0.1, 0.1, 0.1, 0.4)
    internal_rate: float = 512.0  # Hz, RK4 integration rate

    def __post_init__(self) -> None:
        if not 20 <= self.heart_rate <= 250:
            raise ValueError(f"heart_rate {self.heart_rate} bpm outside 20..250")
        if not len(self.theta) == len(self.a) == len(self.b):
            raise ValueError("theta, a and b need one entry per wave")


def rr_process(
    params: ECGParams, *, n_beats_time: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    """RR tachograms (n, T) at 1 Hz, T ≥ duration: bimodal spectrum (Mayer + RSA Gaussians),
    random phases, scaled to the requested mean and std (McSharry 2003, Sec. II-B)."""
    size = 2 ** math.ceil(math.log2(n_beats_time + 2))
    f = np.fft.rfftfreq(size, d=1.0)
    sig_hf = 1.0
    sig_lf = params.lf_hf_ratio * sig_hf
    spectrum = sig_lf / math.sqrt(2 * math.pi * params.c_lf**2) * np.exp(
        -((f - params.f_lf) ** 2) / (2 * params.c_lf**2)
    ) + sig_hf / math.sqrt(2 * math.pi * params.c_hf**2) * np.exp(
        -((f - params.f_hf) ** 2) / (2 * params.c_hf**2)
    )
    phases = np.exp(2j * math.pi * rng.random((n, f.size)))
    series = np.fft.irfft(np.sqrt(spectrum) * phases, n=size, axis=1)  # (n, T)
    series /= series.std(axis=1, keepdims=True)
    rr_mean, rr_std = 60.0 / params.heart_rate, 60.0 * params.heart_rate_std / params.heart_rate**2
    return rr_mean + rr_std * series


def _ecg_derivative(
    state: np.ndarray, omega: np.ndarray, z0: np.ndarray, p: ECGParams
) -> np.ndarray:
    """McSharry 2003 Eq. (3): the limit cycle in (x, y) and the P-QRS-T Gaussian events in z."""
    x, y, z = state[:, 0], state[:, 1], state[:, 2]
    alpha = 1.0 - np.sqrt(x**2 + y**2)
    theta = np.arctan2(y, x)
    dtheta = np.remainder(theta[:, None] - np.asarray(p.theta) + math.pi, 2 * math.pi) - math.pi
    b = np.asarray(p.b)
    events = (np.asarray(p.a) * dtheta * np.exp(-(dtheta**2) / (2 * b**2))).sum(axis=1)
    return np.stack([alpha * x - omega * y, alpha * y + omega * x, -events - (z - z0)], axis=1)


def ecgsyn(
    *,
    n: int,
    length: int,
    sampling_rate: float = 256.0,
    params: ECGParams | None = None,
    seed: int = 0,
) -> Imported:
    """ECGSYN (McSharry et al. 2003): n single-lead ECGs of `length` samples in mV.

    RK4 integration at `params.internal_rate`, angular speed ω(t) = 2π / RR(t) from the RR
    tachogram, z scaled to [-0.4, 1.2] mV as in ecgsyn.m, then decimated and noise added.
    Each record starts at a random phase of the cycle. attrs["r_peaks_s"] holds the true R-peak
    times (θ crossing 0) of every record.
    """
    p = params or ECGParams()
    rng = np.random.default_rng(seed)
    duration = length / sampling_rate
    step = round(p.internal_rate / sampling_rate) or 1
    fs_int = sampling_rate * step
    t = np.arange(length * step) / fs_int
    rr = rr_process(p, n_beats_time=duration, n=n, rng=rng)  # (n, T) at 1 Hz
    rr_t = np.stack([np.interp(t, np.arange(rr.shape[1]), r) for r in rr])  # (n, T_int)
    z0 = p.baseline * np.sin(2 * math.pi * p.f_hf * t)
    z, r_peaks = _integrate(p, omega=2 * math.pi / rr_t, z0=z0, dt=1.0 / fs_int, rng=rng)
    lo, hi = z.min(axis=1, keepdims=True), z.max(axis=1, keepdims=True)
    z = (z - lo) * (1.6 / (hi - lo)) - 0.4  # ecgsyn.m: scale to [-0.4, 1.2] mV
    ecg = z[:, ::step] + p.noise_mv * rng.standard_normal((n, length))
    attrs = {
        "generator": "ecgsyn",
        "seed": seed,
        "params": asdict(p),
        "r_peaks_s": [[round(v / fs_int, 6) for v in r] for r in r_peaks],
        "reference": "McSharry et al., IEEE TBME 50(3), 2003",
    }
    return Imported(
        ecg[:, None, :].astype(np.float32),
        None,
        float(sampling_rate),
        "generator",
        "ecgsyn",
        channel_names=("ecg",),
        units="mV",
        attrs=attrs,
    )


def _integrate(
    p: ECGParams, *, omega: np.ndarray, z0: np.ndarray, dt: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[list[int]]]:
    """Classical RK4 over all records at once; returns z (n, T) and R-peak step indices."""
    n, steps = omega.shape
    phase0 = rng.uniform(-math.pi, math.pi, size=n)
    state = np.stack([np.cos(phase0), np.sin(phase0), np.zeros(n)], axis=1)  # (n, 3)
    z = np.empty((n, steps))
    crossed = np.zeros((n, steps), dtype=bool)
    for k in range(steps):
        z[:, k] = state[:, 2]
        w, zk = omega[:, k], z0[k]
        k1 = _ecg_derivative(state, w, zk, p)
        k2 = _ecg_derivative(state + 0.5 * dt * k1, w, zk, p)
        k3 = _ecg_derivative(state + 0.5 * dt * k2, w, zk, p)
        k4 = _ecg_derivative(state + dt * k3, w, zk, p)
        new = state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        crossed[:, k] = (state[:, 1] < 0) & (new[:, 1] >= 0) & (new[:, 0] > 0)  # θ passes 0
        state = new
    return z, [np.flatnonzero(c).tolist() for c in crossed]


# ------------------------------------------------------------------------------------------
# rotating-machine vibration with rolling-element bearing faults (Randall & Antoni, "Rolling
# element bearing diagnostics - a tutorial", MSSP 25(2), 2011; geometry of the SKF 6205 bearing
# in the Case Western Reserve University bearing data set)

CONDITIONS = ("normal", "inner_race", "outer_race", "ball")


@dataclass(frozen=True)
class VibrationParams:
    shaft_hz: float = 29.95  # 1797 rpm
    harmonics: tuple[float, ...] = (1.0, 0.5, 0.25)  # shaft harmonic amplitudes (1x, 2x, 3x)
    n_balls: int = 9
    ball_diameter: float = 7.94  # mm
    pitch_diameter: float = 39.04  # mm
    contact_angle: float = 0.0  # rad
    resonance_hz: float = 3000.0  # structural resonance excited by each impact
    damping: float = 0.05  # damping ratio of that resonance
    impulse_amplitude: float = 3.0
    slip: float = 0.01  # random jitter of impact spacing (fraction of the period)
    noise: float = 0.2  # std of additive Gaussian noise


def bearing_fault_frequencies(p: VibrationParams) -> dict[str, float]:
    """Kinematic fault frequencies in Hz (Randall & Antoni 2011, Eqs. 1-4)."""
    r = p.ball_diameter / p.pitch_diameter * math.cos(p.contact_angle)
    return {
        "outer_race": p.n_balls / 2 * p.shaft_hz * (1 - r),  # BPFO
        "inner_race": p.n_balls / 2 * p.shaft_hz * (1 + r),  # BPFI
        "ball": p.pitch_diameter / (2 * p.ball_diameter) * p.shaft_hz * (1 - r**2),  # BSF
        "cage": p.shaft_hz / 2 * (1 - r),  # FTF
    }


def vibration(
    *,
    n: int,
    length: int = 4096,
    sampling_rate: float = 12000.0,
    params: VibrationParams | None = None,
    seed: int = 0,
) -> Imported:
    """Bearing vibration: shaft harmonics + fault impacts ringing a damped resonance + noise.

    Labels cycle through `CONDITIONS` (0 normal, 1 inner race, 2 outer race, 3 ball). Inner-race
    impacts are amplitude-modulated at the shaft rate and ball impacts at the cage rate (the
    defect moves through the load zone), outer-race impacts are not (fixed defect).
    """
    p = params or VibrationParams()
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sampling_rate
    labels = np.arange(n) % len(CONDITIONS)
    out = np.empty((n, 1, length), np.float32)
    for i, label in enumerate(labels):
        phase = rng.uniform(0, 2 * math.pi, size=len(p.harmonics))
        x = sum(
            a * np.sin(2 * math.pi * (k + 1) * p.shaft_hz * t + ph)
            for k, (a, ph) in enumerate(zip(p.harmonics, phase))
        )
        if label:
            x = x + _fault_response(CONDITIONS[label], p, t, sampling_rate, rng)
        out[i, 0] = x + p.noise * rng.standard_normal(length)
    attrs = {
        "generator": "vibration",
        "seed": seed,
        "params": asdict(p),
        "conditions": list(CONDITIONS),
        "fault_frequencies_hz": bearing_fault_frequencies(p),
        "reference": "Randall & Antoni, MSSP 25(2), 2011",
    }
    return Imported(
        out,
        labels.astype(np.int64),
        float(sampling_rate),
        "generator",
        "vibration",
        channel_names=("accel",),
        units="g",
        attrs=attrs,
    )


def _fault_response(
    kind: str, p: VibrationParams, t: np.ndarray, fs: float, rng: np.random.Generator
) -> np.ndarray:
    """Impacts every 1/f_fault s (jittered by `slip`) convolved with a damped resonance."""
    freqs = bearing_fault_frequencies(p)
    period = 1.0 / freqs[kind]
    n_imp = int(t[-1] / period) + 2
    times = rng.uniform(0, period) + np.cumsum(period * (1 + p.slip * rng.standard_normal(n_imp)))
    times = times[times < t[-1]]
    mod = {"inner_race": p.shaft_hz, "ball": freqs["cage"]}.get(kind)
    amps = p.impulse_amplitude * (
        np.ones_like(times) if mod is None else 0.5 * (1 + np.cos(2 * math.pi * mod * times))
    )
    train = np.zeros_like(t)
    np.add.at(train, np.round(times * fs).astype(int), amps)
    wn = 2 * math.pi * p.resonance_hz
    wd = wn * math.sqrt(1 - p.damping**2)
    tk = np.arange(int(10 / (p.damping * wn) * fs)) / fs  # ~10 time constants
    kernel = np.exp(-p.damping * wn * tk) * np.sin(wd * tk)
    return np.convolve(train, kernel)[: len(t)]
