// Any picture of a digit, normalised the way MNIST was made: modalities/digits.py,
// normalize_digits, step by step for one picture. The constants come from the web manifest
// (manifest.image: size, centre, box, max_side, noise_floor, min_contrast, luma).
//
// Python keeps grey levels and ink in float32 and the resampling in float64; Math.fround
// reproduces the float32 steps (thresholds included), so the two differ only in summation order.

const f32 = Math.fround;

export class DrawingError extends Error {}

// pixels: {data: Uint8 array, width, height, channels (1 grey, 3 RGB, 4 RGBA)} ->
// grey levels [h * w] in [0, 1] (to_grey: RGB by luma, transparent pixels count as white paper)
export function toGrey(pic, c) {
  const { data, width, height, channels } = pic;
  if (![1, 3, 4].includes(channels)) throw new DrawingError(`${channels} colour channels (expected 1, 3 or 4)`);
  if (Math.min(width, height) < c.min_side) {
    throw new DrawingError(`${height} x ${width} pixels is too small to hold a digit`);
  }
  const [l0, l1, l2] = c.luma.map(f32);
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++) {
    const o = i * channels;
    if (channels === 1) { grey[i] = f32(data[o] / 255); continue; }
    let g = f32(f32(f32(f32(data[o] / 255) * l0) + f32(f32(data[o + 1] / 255) * l1)) + f32(f32(data[o + 2] / 255) * l2));
    if (channels === 4) {
      const alpha = f32(data[o + 3] / 255);
      g = f32(f32(alpha * g) + f32(1 - alpha)); // composited over white paper
    }
    grey[i] = g;
  }
  return grey;
}

function border(x, h, w) {
  const out = [];
  for (let j = 0; j < w; j++) out.push(x[j]);
  for (let j = 0; j < w; j++) out.push(x[(h - 1) * w + j]);
  for (let i = 1; i < h - 1; i++) out.push(x[i * w]);
  for (let i = 1; i < h - 1; i++) out.push(x[i * w + w - 1]);
  return out;
}

function median(values) { // np.median of float32: the mean of the two middle values, in float32
  const v = Float32Array.from(values).sort();
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : f32(f32(v[m - 1] + v[m]) / 2);
}

// pictures larger than max_side are averaged down by whole f x f blocks (padded with the background)
function blockAverage(x, h, w, c) {
  const f = Math.ceil(Math.max(h, w) / c.max_side);
  if (f === 1) return { x, h, w };
  const hp = Math.ceil(h / f) * f;
  const wp = Math.ceil(w / f) * f;
  const bg = median(border(x, h, w));
  const H = hp / f;
  const W = wp / f;
  const out = new Float32Array(H * W);
  for (let I = 0; I < H; I++) {
    for (let J = 0; J < W; J++) {
      let s = 0;
      for (let a = 0; a < f; a++) {
        for (let b = 0; b < f; b++) {
          const r = I * f + a;
          const q = J * f + b;
          s += r < h && q < w ? x[r * w + q] : bg;
        }
      }
      out[I * W + J] = f32(s / (f * f));
    }
  }
  return { x: out, h: H, w: W };
}

// ink_of: light on dark, background 0, peak 1, specks below noise_floor removed
export function inkOf(x, h, w, c) {
  let bg = median(border(x, h, w));
  const lightPaper = bg > 0.5;
  if (lightPaper) bg = f32(1 - bg);
  const ink = new Float32Array(x.length);
  let peak = 0;
  for (let i = 0; i < x.length; i++) {
    const v = lightPaper ? f32(1 - x[i]) : x[i];
    ink[i] = Math.max(f32(v - bg), 0);
    if (ink[i] > peak) peak = ink[i];
  }
  if (peak < f32(c.min_contrast)) {
    throw new DrawingError("no strokes found (a blank or uniform picture); draw a digit first");
  }
  const floor = f32(c.noise_floor);
  for (let i = 0; i < ink.length; i++) {
    const v = f32(ink[i] / peak);
    ink[i] = v >= floor ? v : 0;
  }
  return ink;
}

// [size, n] weights: output pixel k reads source pixels around (k + 0.5 - centre) / scale + com
// with a triangle filter of half-width max(1, 1 / scale)
function resampling(com, scale, n, c) {
  const width = Math.max(1, 1 / scale);
  const m = new Float64Array(c.size * n);
  for (let k = 0; k < c.size; k++) {
    const u = (k + 0.5 - c.centre) / scale + com;
    for (let p = 0; p < n; p++) m[k * n + p] = Math.max(1 - Math.abs(p + 0.5 - u) / width, 0) / width;
  }
  return m;
}

// one picture -> Float32Array [size * size] in [0, 1]: white ink on black, bounding box scaled
// into box x box, centre of mass at the centre
export function normalizeDigit(pic, c) {
  const small = blockAverage(toGrey(pic, c), pic.height, pic.width, c);
  const { h, w } = small;
  const ink = inkOf(small.x, h, w, c);
  let top = h, bottom = 0, left = w, right = 0, mass = 0, comR = 0, comC = 0;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const v = ink[i * w + j];
      if (v === 0) continue;
      top = Math.min(top, i); bottom = Math.max(bottom, i + 1);
      left = Math.min(left, j); right = Math.max(right, j + 1);
      mass += v; comR += v * (i + 0.5); comC += v * (j + 0.5);
    }
  }
  const scale = (c.box - 1) / Math.max(Math.max(bottom - top, right - left) - 1, 1);
  const wr = resampling(comR / mass, scale, h, c);
  const wc = resampling(comC / mass, scale, w, c);
  const S = c.size;
  const tmp = new Float64Array(S * w); // wr @ ink
  for (let k = 0; k < S; k++) {
    for (let i = 0; i < h; i++) {
      const a = wr[k * h + i];
      if (a === 0) continue;
      for (let j = 0; j < w; j++) tmp[k * w + j] += a * ink[i * w + j];
    }
  }
  const out = new Float64Array(S * S); // (wr @ ink) @ wc^T
  let peak = 0;
  for (let k = 0; k < S; k++) {
    for (let l = 0; l < S; l++) {
      let s = 0;
      for (let j = 0; j < w; j++) s += tmp[k * w + j] * wc[l * w + j];
      out[k * S + l] = s;
      if (s > peak) peak = s;
    }
  }
  const result = new Float32Array(S * S);
  peak = Math.max(peak, 1e-12);
  for (let i = 0; i < out.length; i++) result[i] = Math.min(Math.max(out[i] / peak, 0), 1);
  return result;
}

// What the image encoder takes: a run trained on raw MNIST (standardize false) takes 28 x 28 grey
// pictures as they are (divided by 255, MMGA.prepare_images); every other picture is normalised.
export function prepareImage(pic, c) {
  if (!c.standardize && pic.width === c.size && pic.height === c.size && pic.channels === 1) {
    const out = new Float32Array(c.size * c.size);
    for (let i = 0; i < out.length; i++) out[i] = c.normalize ? f32(pic.data[i] / 255) : Math.min(pic.data[i], 1);
    return out;
  }
  return normalizeDigit(pic, c);
}
