// The live page's random numbers: mulberry32, a 32-bit generator small enough to write in any
// language. tools/webparity.py implements the same one, so a test can give Python and the page the
// same seed and expect the same draw (which link, which training member, Griffin-Lim's phases).

export function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296; // in [0, 1), 2^-32 apart
  };
}
