// The audio front end and its inverse: modalities/audio.py and modalities/features.py, for one
// clip at a time. Constants come from the web manifest (manifest.audio: sample_rate, n_samples,
// n_fft, hop_length, n_mels, n_frames, top_db, db_floor, db_ceil, amin, silence_peak, ...) and the
// matrices from its arrays (mel_basis [n_mels, bins], mel_pinv [bins, n_mels], hann [n_fft]).
//
// Python computes spectra in float32 and frame energies in float64; Math.fround marks the float32
// steps whose rounding matters (thresholds, the unit scale), the FFTs run in float64.

import { makeFFT } from "./fft.js";

const f32 = Math.fround;

export class AudioError extends Error {}

let plan = null;
function fftOf(n) {
  if (!plan || plan.n !== n) plan = makeFFT(n);
  return plan;
}

// check_waves: finite, non-empty, not silent
export function checkWave(wave, c) {
  if (!wave || wave.length === 0) throw new AudioError("the recording holds no samples");
  let peak = 0;
  for (let i = 0; i < wave.length; i++) {
    if (!Number.isFinite(wave[i])) throw new AudioError("the recording contains NaN or inf");
    peak = Math.max(peak, Math.abs(wave[i]));
  }
  if (peak < f32(c.silence_peak)) {
    throw new AudioError(`silent (peak below ${c.silence_peak}); nothing to hear, speak louder or closer`);
  }
}

// trim_and_fix + the peak normalisation of prepare_waves: leading and trailing silence (top_db
// below the clip's loudest frame, frame RMS of centred n_fft windows) trimmed, start-aligned on a
// frame, cropped or zero-padded to n_samples, peak-normalised. wave: Float32Array at sample_rate.
export function prepareWave(wave, c) {
  checkWave(wave, c);
  const n = c.n_samples, hop = c.hop_length, L = wave.length;
  if (c.n_fft % hop) throw new AudioError("the page needs hop_length to divide n_fft");
  const k = c.n_fft / hop, pad = c.n_fft / 2;
  const nOut = 1 + Math.floor(L / hop);
  const blocks = new Float64Array(nOut + k - 1); // per-hop sums of squares of the padded clip
  for (let i = 0; i < L; i++) blocks[Math.floor((i + pad) / hop)] += wave[i] * wave[i];
  const db = new Float64Array(nOut);
  let top = -Infinity;
  const inClip = Math.floor(L / hop) + 1;
  for (let t = 0; t < nOut; t++) {
    let power = blocks[t];
    for (let j = 1; j < k; j++) power += blocks[t + j];
    const rms = Math.sqrt(power / c.n_fft);
    db[t] = t < inClip ? 10 * Math.log10(Math.max(1e-20, rms * rms)) : -Infinity;
    top = Math.max(top, db[t]);
  }
  let first = -1, last = -1;
  for (let t = 0; t < nOut; t++) {
    if (db[t] > top - c.top_db) { if (first < 0) first = t; last = t; }
  }
  if (first < 0) first = last = 0;
  const end = Math.min((last + 1) * hop, L);
  const out = new Float32Array(n);
  const keep = Math.min(n, end - first * hop);
  for (let i = 0; i < keep; i++) out[i] = wave[first * hop + i];
  if (c.normalize) {
    let peak = 0;
    for (let i = 0; i < n; i++) peak = Math.max(peak, Math.abs(out[i]));
    const by = f32(Math.max(peak, c.silence_peak));
    for (let i = 0; i < n; i++) out[i] = f32(out[i] / by);
  }
  return out;
}

function lastNonZero(x) {
  for (let i = x.length - 1; i >= 0; i--) if (x[i] !== 0) return i + 1;
  return 0;
}

// voiced_frames: the frames of a prepared clip that hold sound (at least 2, at most n_frames)
export function voicedFrames(prepared, c) {
  const end = lastNonZero(prepared);
  return Math.min(Math.max(Math.ceil(end / c.hop_length) + 1, 2), c.n_frames);
}

// logmel: [n_frames * n_mels] (frames first) log-mel power in dB, floored at db_floor; frames
// past the clip's last sample are exactly the floor (sounding_frames)
export function logmel(prepared, c, arrays) {
  const { n_fft: nfft, hop_length: hop, n_mels: M, n_frames: T } = c;
  const bins = nfft / 2 + 1, pad = nfft / 2;
  const end = lastNonZero(prepared);
  const count = end > 0 ? Math.min(Math.ceil((end + pad) / hop), T) : 0;
  const out = new Float32Array(T * M).fill(f32(c.db_floor));
  const fft = fftOf(nfft);
  const frame = new Float64Array(nfft), re = new Float64Array(bins), im = new Float64Array(bins);
  const power = new Float64Array(bins);
  const basis = arrays.mel_basis, hann = arrays.hann;
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < nfft; i++) {
      const s = t * hop - pad + i;
      frame[i] = s >= 0 && s < prepared.length ? f32(prepared[s] * hann[i]) : 0;
    }
    fft.rfft(frame, re, im);
    for (let b = 0; b < bins; b++) power[b] = re[b] * re[b] + im[b] * im[b];
    for (let m = 0; m < M; m++) {
      let s = 0;
      for (let b = 0; b < bins; b++) s += power[b] * basis[m * bins + b];
      out[t * M + m] = f32(Math.max(10 * Math.log10(Math.max(s, c.amin)), c.db_floor));
    }
  }
  return out;
}

// stretch_frames, frames first ([frames * mels]): frames [0, src) mapped linearly onto [0, dst)
// of a window `width` frames wide, `fill` beyond
export function stretchFrames(byFrame, M, src, dst, width, fill) {
  const out = new Float32Array(width * M);
  for (let j = 0; j < width; j++) {
    if (j >= dst) { out.fill(f32(fill), j * M, (j + 1) * M); continue; }
    const pos = (j * (src - 1)) / Math.max(dst - 1, 1);
    const lo = Math.min(Math.floor(pos), src - 1);
    const hi = Math.min(lo + 1, src - 1);
    const w = f32(pos - lo);
    for (let m = 0; m < M; m++) {
      const a = byFrame[lo * M + m], b = byFrame[hi * M + m];
      out[j * M + m] = f32(f32(f32(b - a) * w) + a); // a + w (b - a), as numpy does it in place
    }
  }
  return out;
}

// waves_to_unit_logmel for one clip: the model's input [n_mels * n_frames] (mels first) in [0, 1],
// with the prepared wave, its voiced frames and the dB log-mel before the time normalisation
export function waveToUnitLogmel(wave, c, arrays) {
  const prepared = prepareWave(wave, c);
  let byFrame = logmel(prepared, c, arrays);
  const voiced = voicedFrames(prepared, c);
  const dbRaw = byFrame;
  const T = c.n_frames, M = c.n_mels;
  if (c.time_normalize) byFrame = stretchFrames(byFrame, M, voiced, T, T, c.db_floor);
  const unit = new Float32Array(M * T);
  const range = c.db_ceil - c.db_floor;
  for (let t = 0; t < T; t++) {
    for (let m = 0; m < M; m++) {
      const v = f32(f32(byFrame[t * M + m] - c.db_floor) / range);
      unit[m * T + t] = Math.min(Math.max(v, 0), 1);
    }
  }
  return { unit, prepared, voiced, dbRaw };
}

// unit_logmel_to_waves for one decoded log-mel [n_mels * n_frames] in [0, 1]: back to dB, deepened
// by `contrast` (expand_contrast), stretched back to `frames` (its natural length) under time
// normalisation, then inverse_logmel. phase(): uniforms for Griffin-Lim's initial phases.
export function unitLogmelToWave(unit, c, arrays, frames, contrast, phase, iters) {
  const M = c.n_mels, T = c.n_frames;
  const range = c.db_ceil - c.db_floor;
  let db = new Float32Array(M * T); // [mels, frames]
  let peak = -Infinity;
  for (let i = 0; i < db.length; i++) { db[i] = f32(f32(unit[i] * range) + c.db_floor); peak = Math.max(peak, db[i]); }
  if (contrast !== 1) {
    for (let i = 0; i < db.length; i++) {
      const v = f32(peak + f32(contrast * f32(db[i] - peak)));
      db[i] = Math.min(Math.max(v, c.db_floor), c.db_ceil);
    }
  }
  if (c.time_normalize) {
    const dst = Math.min(Math.max(frames ?? c.default_frames, 2), T);
    const byFrame = new Float32Array(T * M);
    for (let m = 0; m < M; m++) for (let t = 0; t < T; t++) byFrame[t * M + m] = db[m * T + t];
    const stretched = stretchFrames(byFrame, M, T, dst, T, c.db_floor);
    db = new Float32Array(M * T);
    for (let m = 0; m < M; m++) for (let t = 0; t < T; t++) db[m * T + t] = stretched[t * M + m];
  }
  return inverseLogmel(db, c, arrays, phase, iters);
}

// inverse_logmel: dB [n_mels * n_frames] -> a wave of n_samples: power by the mel pseudo-inverse
// (clipped at 0) to magnitudes, then Griffin-Lim over the frames that hold sound (+ the window's
// overlap); silence beyond
export function inverseLogmel(db, c, arrays, phase, iters) {
  const M = c.n_mels, T = c.n_frames, bins = c.n_fft / 2 + 1, hop = c.hop_length;
  const power = new Float32Array(M * T);
  let active = 0;
  for (let m = 0; m < M; m++) {
    for (let t = 0; t < T; t++) {
      const v = db[m * T + t];
      power[m * T + t] = v > f32(c.power_mask_db) ? f32(Math.pow(10, f32(0.1 * v))) : 0;
      if (power[m * T + t] > 0) active = Math.max(active, t + 1);
    }
  }
  active = Math.max(active, 1);
  const t = Math.min(T, active + c.n_fft / hop);
  const length = t === T ? c.n_samples : Math.min(c.n_samples, (t - 1) * hop);
  const mag = new Float64Array(t * bins); // [frames, bins]
  const inv = arrays.mel_pinv;
  for (let f = 0; f < t; f++) {
    for (let b = 0; b < bins; b++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += inv[b * M + m] * power[m * T + f];
      mag[f * bins + b] = Math.sqrt(Math.max(s, 0));
    }
  }
  const out = new Float32Array(c.n_samples);
  out.set(griffinLim(mag, t, c.n_fft, hop, iters ?? c.griffin_lim_iters, length, arrays.hann,
                     c.griffin_lim_momentum, phase));
  return out;
}

// Fast Griffin-Lim (Perraudin et al.), audio.griffinlim: mag [frames * bins]; the initial phase of
// each bin is 2 pi phase() (row-major over frames, bins, as numpy's rng.random(shape) fills it)
export function griffinLim(mag, T, nfft, hop, nIter, length, hann, momentum, phase) {
  const bins = nfft / 2 + 1, k = nfft / hop, total = nfft + hop * (T - 1), pad = nfft / 2;
  const fft = fftOf(nfft);
  const invWss = new Float64Array(total); // 1 / the summed squared windows (1 where ~0)
  for (let f = 0; f < T; f++) for (let i = 0; i < nfft; i++) invWss[f * hop + i] += hann[i] * hann[i];
  for (let i = 0; i < total; i++) invWss[i] = 1 / (invWss[i] > 1e-8 ? invWss[i] : 1);
  const size = T * bins;
  let xr = new Float64Array(size), xi = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const a = 2 * Math.PI * phase();
    xr[i] = Math.cos(a) * mag[i];
    xi[i] = Math.sin(a) * mag[i];
  }
  const y = new Float64Array(total), frame = new Float64Array(nfft);
  const re = new Float64Array(bins), im = new Float64Array(bins);
  const istft = (sr, si) => {
    y.fill(0);
    for (let f = 0; f < T; f++) {
      fft.irfft(sr.subarray(f * bins, (f + 1) * bins), si.subarray(f * bins, (f + 1) * bins), frame);
      for (let i = 0; i < nfft; i++) y[f * hop + i] += frame[i] * hann[i];
    }
    for (let i = 0; i < total; i++) y[i] *= invWss[i];
    return y;
  };
  const stft = (signal, outR, outI) => {
    for (let f = 0; f < T; f++) {
      for (let i = 0; i < nfft; i++) frame[i] = signal[f * hop + i] * hann[i];
      fft.rfft(frame, re, im);
      outR.set(re, f * bins);
      outI.set(im, f * bins);
    }
  };
  let pr = new Float64Array(size), pi = new Float64Array(size); // the previous rebuilt spectrum
  let rr = new Float64Array(size), ri = new Float64Array(size);
  const decay = -momentum / (1 + momentum);
  for (let it = 0; it < nIter; it++) {
    stft(istft(xr, xi), rr, ri); // rebuilt
    for (let i = 0; i < size; i++) { // accelerated step, then projected onto the magnitudes
      const ar = pr[i] * decay + rr[i], ai = pi[i] * decay + ri[i];
      const scale = mag[i] / (Math.hypot(ar, ai) + 1e-16);
      pr[i] = ar * scale; pi[i] = ai * scale;
    }
    [xr, pr] = [pr, xr]; [xi, pi] = [pi, xi]; // x <- projected; prev <- rebuilt
    [pr, rr] = [rr, pr]; [pi, ri] = [ri, pi];
  }
  const wave = istft(xr, xi);
  return Float32Array.from(wave.subarray(pad, pad + length));
}

// 16-bit PCM WAV bytes of a wave in [-1, 1]
export function wavBytes(wave, rate) {
  const buf = new ArrayBuffer(44 + wave.length * 2);
  const v = new DataView(buf);
  const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + wave.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  text(36, "data"); v.setUint32(40, wave.length * 2, true);
  for (let i = 0; i < wave.length; i++) {
    const s = Math.max(-1, Math.min(1, wave[i]));
    v.setInt16(44 + i * 2, Math.round(s * 32767), true);
  }
  return new Uint8Array(buf);
}
