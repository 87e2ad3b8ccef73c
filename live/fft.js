// A small radix-2 FFT (the live page's only numerical dependency; Python uses scipy.fft).
//
// makeFFT(n) precomputes the bit-reversal order and twiddle factors for one power-of-two size;
// rfft / irfft follow numpy's conventions: rfft of n real samples gives n / 2 + 1 bins, irfft
// treats its input as Hermitian (the imaginary parts of the DC and Nyquist bins are ignored) and
// divides by n. Everything is in float64.

export function makeFFT(n) {
  if (n < 2 || (n & (n - 1)) !== 0) throw new Error(`FFT size ${n} is not a power of two`);
  const bits = Math.log2(n);
  const rev = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
    rev[i] = r;
  }
  const cos = new Float64Array(n / 2);
  const sin = new Float64Array(n / 2);
  for (let i = 0; i < n / 2; i++) {
    cos[i] = Math.cos((2 * Math.PI * i) / n);
    sin[i] = -Math.sin((2 * Math.PI * i) / n); // e^{-2 pi i k / n}: the forward transform
  }
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  const half = n / 2;

  // in place on (re, im); sign -1 forward, +1 inverse (unscaled)
  function transform(xr, xi, sign) {
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        let t = xr[i]; xr[i] = xr[j]; xr[j] = t;
        t = xi[i]; xi[i] = xi[j]; xi[j] = t;
      }
    }
    for (let size = 2; size <= n; size *= 2) {
      const step = n / size;
      const h = size / 2;
      for (let start = 0; start < n; start += size) {
        for (let k = 0; k < h; k++) {
          const wr = cos[k * step];
          const wi = sign < 0 ? sin[k * step] : -sin[k * step];
          const a = start + k;
          const b = a + h;
          const tr = xr[b] * wr - xi[b] * wi;
          const ti = xr[b] * wi + xi[b] * wr;
          xr[b] = xr[a] - tr; xi[b] = xi[a] - ti;
          xr[a] += tr; xi[a] += ti;
        }
      }
    }
  }

  return {
    n,
    // real x[n] -> (outRe, outIm)[n / 2 + 1]
    rfft(x, outRe, outIm) {
      for (let i = 0; i < n; i++) { re[i] = x[i]; im[i] = 0; }
      transform(re, im, -1);
      for (let k = 0; k <= half; k++) { outRe[k] = re[k]; outIm[k] = im[k]; }
    },
    // (specRe, specIm)[n / 2 + 1] -> real out[n], numpy's irfft
    irfft(specRe, specIm, out) {
      re[0] = specRe[0]; im[0] = 0;
      re[half] = specRe[half]; im[half] = 0;
      for (let k = 1; k < half; k++) {
        re[k] = specRe[k]; im[k] = specIm[k];
        re[n - k] = specRe[k]; im[n - k] = -specIm[k];
      }
      transform(re, im, 1);
      for (let i = 0; i < n; i++) out[i] = re[i] / n;
    },
  };
}
