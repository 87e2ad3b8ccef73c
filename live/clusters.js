// Cluster assignment of a new code from the exported arrays alone: tools/webformat.py, assign(),
// the reference this follows (float64 throughout).

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

// spec: the manifest's clusterers[modality]; a: {name: typed array} without the prefix
// (centres, weights, means, ...); z: one code (length d). Returns the cluster id.
export function assign(spec, a, z) {
  const d = z.length;
  if (spec.algorithm === "kmeans") { // the nearest centre
    const k = a.centres.length / d;
    const dist = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) { const t = z[j] - a.centres[c * d + j]; s += t * t; }
      dist[c] = -s;
    }
    return argmax(dist);
  }
  if (spec.algorithm === "gmm") { // argmax_k log w_k + sum_j log L_k[j, j] - 0.5 |(x - mu_k) L_k|^2
    const k = a.weights.length;
    const score = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      const L = c * d * d;
      let logDet = 0;
      let sq = 0;
      for (let e = 0; e < d; e++) {
        logDet += Math.log(a.precisions_cholesky[L + e * d + e]);
        let y = 0;
        let ym = 0;
        for (let j = 0; j < d; j++) {
          y += z[j] * a.precisions_cholesky[L + j * d + e];
          ym += a.means[c * d + j] * a.precisions_cholesky[L + j * d + e];
        }
        sq += (y - ym) * (y - ym);
      }
      score[c] = Math.log(a.weights[c]) + logDet - 0.5 * sq;
    }
    return argmax(score);
  }
  if (spec.algorithm === "umap_gmm") {
    // s = (x - mean) / scale; the n_neighbors nearest training rows vote with their memberships,
    // weighted by 1 / distance (only the exact matches when there are any)
    const s = new Float64Array(d);
    for (let j = 0; j < d; j++) s[j] = (z[j] - a.mean[j]) / a.scale[j];
    const rows = a.train_inputs.length / d;
    const k = Math.min(spec.n_neighbors, rows);
    const bestD = new Float64Array(k).fill(Infinity); // the k smallest distances, ascending
    const bestI = new Int32Array(k).fill(-1);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      const o = r * d;
      for (let j = 0; j < d; j++) { const t = s[j] - a.train_inputs[o + j]; sum += t * t; }
      if (sum >= bestD[k - 1] * bestD[k - 1] && bestI[k - 1] >= 0) continue;
      const dist = Math.sqrt(sum);
      if (dist >= bestD[k - 1]) continue;
      let p = k - 1;
      while (p > 0 && bestD[p - 1] > dist) { bestD[p] = bestD[p - 1]; bestI[p] = bestI[p - 1]; p--; }
      bestD[p] = dist; bestI[p] = r;
    }
    const nc = a.train_posteriors.length / rows;
    const exact = bestD[0] <= 1e-12;
    const vote = new Float64Array(nc);
    for (let i = 0; i < k; i++) {
      const w = exact ? (bestD[i] <= 1e-12 ? 1 : 0) : 1 / Math.max(bestD[i], 1e-12);
      for (let c = 0; c < nc; c++) vote[c] += w * a.train_posteriors[bestI[i] * nc + c];
    }
    return argmax(vote);
  }
  throw new Error(`unknown clustering algorithm ${spec.algorithm}`);
}
