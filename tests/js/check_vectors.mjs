// Runs the live page's functions (live/*.js) on the test vectors Python wrote
// (mmga_helpers/tools/webvectors.py) and prints, as one JSON object, how far each one is from
// the package's answer. Usage: node tests/js/check_vectors.mjs VECTORS.json
import { readFileSync } from "node:fs";
import { makeFFT } from "../../live/fft.js";
import { mulberry32 } from "../../live/random.js";
import { drawTarget } from "../../live/brain.js";
import { assign } from "../../live/clusters.js";
import { normalizeDigit } from "../../live/digits.js";
import { logmel, prepareWave, unitLogmelToWave, voicedFrames, waveToUnitLogmel } from "../../live/audio.js";

const v = JSON.parse(readFileSync(process.argv[2], "utf8"));
const maxDiff = (a, b) => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const arrays = Object.fromEntries(Object.entries(v.arrays).map(([k, x]) => [k, Float32Array.from(x)]));
const out = {};

out.random = Math.max(...v.random.map((r) => { const g = mulberry32(r.seed); return maxDiff(r.values.map(() => g()), r.values); }));

const n = v.fft.x.length, fft = makeFFT(n);
const re = new Float64Array(n / 2 + 1), im = new Float64Array(n / 2 + 1), back = new Float64Array(n);
fft.rfft(v.fft.x, re, im);
fft.irfft(re, im, back);
out.fft = Math.max(maxDiff(re, v.fft.re), maxDiff(im, v.fft.im));
out.ifft = maxDiff(back, v.fft.x);

out.digits = 0;
out.digit_errors = [];
for (const p of v.pictures) {
  try {
    const got = normalizeDigit({ data: Uint8Array.from(p.data), width: p.width, height: p.height, channels: p.channels }, v.image);
    out.digits = Math.max(out.digits, p.expected ? maxDiff(got, p.expected) : Infinity);
  } catch (err) {
    out.digit_errors.push(p.error && err.message === p.error ? "same" : `${err.message} != ${p.error}`);
  }
}

const c = v.audio;
Object.assign(out, { prepared: 0, logmel_db: 0, voiced_mismatches: 0, unit_db: 0 });
for (const clip of v.clips) {
  const wave = Float32Array.from(clip.wave);
  const prepared = prepareWave(wave, c);
  out.prepared = Math.max(out.prepared, maxDiff(prepared, clip.prepared));
  out.logmel_db = Math.max(out.logmel_db, maxDiff(logmel(Float32Array.from(clip.prepared), c, arrays), clip.logmel));
  out.voiced_mismatches += voicedFrames(prepared, c) !== clip.voiced;
  const { unit } = waveToUnitLogmel(wave, c, arrays);
  out.unit_db = Math.max(out.unit_db, maxDiff(unit, clip.unit) * (c.db_ceil - c.db_floor));
}

out.inverse_wave = 0;
out.inverse_wave_peak = 0;
for (const inv of v.inverse) {
  let i = 0;
  const phase = () => inv.phases[i++];
  const wave = unitLogmelToWave(Float32Array.from(inv.unit), c, arrays, inv.frames, inv.contrast, phase);
  out.inverse_wave = Math.max(out.inverse_wave, maxDiff(wave, inv.wave));
  out.inverse_wave_peak = Math.max(out.inverse_wave_peak, ...inv.wave.map(Math.abs));
}

out.cluster_mismatches = 0;
for (const cl of v.clusters) {
  const a = Object.fromEntries(Object.entries(cl.arrays).map(([k, x]) => [k, Float64Array.from(x)]));
  cl.codes.forEach((z, i) => { out.cluster_mismatches += assign(cl.spec, a, z) !== cl.expected[i]; });
}

out.brain_mismatches = 0;
for (const row of v.brain) {
  row.u.forEach((u, i) => { out.brain_mismatches += drawTarget(row.links, row.strengths, "sample", u) !== row.sample[i]; });
  out.brain_mismatches += drawTarget(row.links, row.strengths, "argmax", 0) !== row.argmax;
}
console.log(JSON.stringify(out));
