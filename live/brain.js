// The brain's recall (learn/brain.py, ConvergenceDivergenceZone._recall) and the latent bank's
// draw (generation.py, LatentBank.draw_with_frames), with the randomness passed in as uniforms.

// mode "sample": the target drawn with probability proportional to the row of draw weights
// (the one-to-many table's links: brain.draw_weights); "argmax": the strongest link.
//   cdf = cumsum(links); target = min(#{cdf <= u * cdf[-1]}, n - 1)
export function drawTarget(links, strengths, mode, u) {
  const n = links.length;
  if (mode === "argmax") {
    let best = 0;
    for (let j = 1; j < n; j++) if (strengths[j] > strengths[best]) best = j;
    return best;
  }
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let j = 0; j < n; j++) cdf[j] = acc += links[j];
  const v = u * cdf[n - 1];
  let count = 0;
  for (let j = 0; j < n; j++) if (cdf[j] <= v) count++;
  return Math.min(count, n - 1);
}

// The members of each cluster in the bank, in the order of a stable argsort of the clusters.
export function membersByCluster(clusters, nClusters) {
  const out = Array.from({ length: nClusters }, () => []);
  for (let i = 0; i < clusters.length; i++) out[clusters[i]].push(i);
  return out;
}

// One member of cluster `target`, drawn uniformly: floor(u * count).
export function drawMember(members, target, u) {
  const list = members[target];
  if (!list || list.length === 0) throw new Error(`cluster ${target} has no training latents to draw from`);
  return list[Math.min(Math.floor(u * list.length), list.length - 1)];
}
