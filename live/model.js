// A finished run in the browser: the web export (`mmga export-web`: manifest.json, the four ONNX
// networks, raw little-endian arrays) loaded once, then hear and see as generation.py's MMGA does:
//   picture -> MNIST recipe -> image encoder -> image cluster -> the brain draws an audio cluster
//   -> the code of one of its training members -> audio decoder -> deepened log-mel -> natural
//   length -> Griffin-Lim -> wave (hear); and clip -> log-mel -> audio encoder -> audio cluster ->
//   image cluster -> a member's code -> image decoder -> picture (see).
// Randomness comes from one uniform stream (random.js) in a fixed order: the link, the member,
// then Griffin-Lim's phases; the same seed in tools/webparity.py draws the same.

import { assign } from "./clusters.js";
import { drawMember, drawTarget, membersByCluster } from "./brain.js";
import { prepareImage } from "./digits.js";
import { unitLogmelToWave, waveToUnitLogmel } from "./audio.js";
import { mulberry32 } from "./random.js";

const TYPES = { float32: Float32Array, float64: Float64Array, int32: Int32Array };
const NETWORKS = ["image_encoder", "image_decoder", "audio_encoder", "audio_decoder"];

export class LoadError extends Error {}

async function fetchBytes(url) {
  let res;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new LoadError(`${url} could not be fetched (${err.message})`);
  }
  if (!res.ok) throw new LoadError(`${url} is missing (HTTP ${res.status})`);
  return res.arrayBuffer();
}

// onnxruntime-web, from the copy the book ships (live/ort/); single-threaded WebAssembly, which
// needs no cross-origin isolation from the server. Its .wasm is shipped gzipped (a quarter of the
// size) and inflated here with the browser's DecompressionStream.
export async function loadOrt(ortBase) {
  if (typeof WebAssembly !== "object") throw new LoadError("this browser has no WebAssembly, which the models need");
  if (typeof DecompressionStream !== "function") {
    throw new LoadError("this browser cannot inflate the model runtime (DecompressionStream: Chrome 80, Firefox 113, Safari 16.4)");
  }
  const packed = await fetch(new URL("ort-wasm-simd-threaded.wasm.gz", ortBase));
  if (!packed.ok) throw new LoadError(`the model runtime is missing (HTTP ${packed.status})`);
  let wasm = await packed.arrayBuffer();
  const head = new Uint8Array(wasm, 0, 2);
  if (head[0] === 0x1f && head[1] === 0x8b) { // gzip; a server that sent it with Content-Encoding already inflated it
    wasm = await new Response(new Blob([wasm]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
  }
  const ort = await import(new URL("ort.wasm.min.mjs", ortBase).href);
  ort.env.wasm.wasmBinary = wasm;
  ort.env.wasm.wasmPaths = ortBase;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  return ort;
}

export class Run {
  constructor(manifest, arrays, sessions, ort) {
    this.manifest = manifest;
    this.arrays = arrays;
    this.sessions = sessions;
    this.ort = ort;
    this.image = manifest.image;
    this.audio = manifest.audio;
    this.generation = manifest.generation;
    const pick = (prefix) => Object.fromEntries(Object.entries(arrays)
      .filter(([k]) => k.startsWith(prefix + "_")).map(([k, v]) => [k.slice(prefix.length + 1), v]));
    this.clusterArrays = { image: pick("image_clusterer"), audio: pick("audio_clusterer") };
    const nImage = manifest.clusterers.image.n_clusters, nAudio = manifest.clusterers.audio.n_clusters;
    this.members = {
      image: membersByCluster(arrays.image_bank_clusters, nImage),
      audio: membersByCluster(arrays.audio_bank_clusters, nAudio),
    };
    this.nClusters = { image: nImage, audio: nAudio };
  }

  // every array and network of the export under `webBase` (a URL ending in /)
  static async load(webBase, ortBase) {
    const ort = await loadOrt(ortBase);
    const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes(new URL("manifest.json", webBase))));
    if (manifest.format !== "mmga-web" || manifest.format_version !== 1) {
      throw new LoadError("web/manifest.json is not an mmga-web export of version 1");
    }
    const arrays = {};
    await Promise.all(Object.entries(manifest.arrays).map(async ([key, e]) => {
      const raw = await fetchBytes(new URL(e.path, webBase));
      const n = e.shape.reduce((a, b) => a * b, 1);
      if (raw.byteLength !== n * TYPES[e.dtype].BYTES_PER_ELEMENT) throw new LoadError(`${e.path} has the wrong size`);
      arrays[key] = new TYPES[e.dtype](raw);
    }));
    const sessions = {};
    await Promise.all(NETWORKS.map(async (name) => {
      const bytes = new Uint8Array(await fetchBytes(new URL(manifest.models[name].path, webBase)));
      sessions[name] = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    }));
    return new Run(manifest, arrays, sessions, ort);
  }

  // one network on a batch: x (Float32Array of n items), n -> Float32Array of outputs
  async run(name, x, n) {
    const entry = this.manifest.models[name];
    const dims = [n, ...entry.input.shape.slice(1)];
    const feeds = { [entry.input.name]: new this.ort.Tensor("float32", x, dims) };
    const out = await this.sessions[name].run(feeds);
    return out[entry.output.name] ?? Object.values(out)[0];
  }

  async encode(modality, x, n = 1) {
    return (await this.run(`${modality}_encoder`, x, n)).data;
  }

  cluster(modality, z) {
    return assign(this.manifest.clusterers[modality], this.clusterArrays[modality], z);
  }

  // the brain's recall: source cluster -> {target, strength (the link's), links drawn from}
  recall(direction, source, u, mode = this.generation.default_mode) {
    const [from, to] = direction === "image_to_audio" ? ["image", "audio"] : ["audio", "image"];
    const n = this.nClusters[to];
    const row = (key) => this.arrays[`brain_${direction}_${key}`].subarray(source * n, (source + 1) * n);
    const strengths = row("strengths");
    const target = drawTarget(row("links"), strengths, mode, u);
    return { from, to, target, strength: strengths[target] };
  }

  // one direction of the path, as MMGA takes it: encode, assign the cluster, follow one of the brain's
  // links, draw a member of the linked cluster and decode its code; `next` continues the same draw
  async travel(from, to, x, next, mode) {
    const z = await this.encode(from, x);
    const source = this.cluster(from, z);
    const link = this.recall(`${from}_to_${to}`, source, next(), mode);
    const member = drawMember(this.members[to], link.target, next());
    const d = this.manifest.latent_dims[to];
    const code = this.arrays[`${to}_bank_z`].slice(member * d, (member + 1) * d);
    const decoded = (await this.run(`${to}_decoder`, code, 1)).data;
    return { source, target: link.target, strength: link.strength, member, decoded };
  }

  // picture {data, width, height, channels} -> {wave (Float32Array at sample_rate), ...the path}
  async hear(picture, seed, mode) {
    const t0 = performance.now();
    const next = mulberry32(seed);
    const x = prepareImage(picture, this.image);
    const { decoded, ...path } = await this.travel("image", "audio", x, next, mode);
    const frames = this.arrays.audio_bank_frames[path.member];
    const wave = unitLogmelToWave(decoded, this.audio, this.arrays, frames, this.generation.audio_contrast, next);
    return { wave, normalized: x, ...path, seed, ms: performance.now() - t0 };
  }

  // clip (Float32Array at the run's sample_rate) -> {image (Float32Array [28 * 28] in [0, 1]), ...}
  async see(wave, seed, mode) {
    const t0 = performance.now();
    const next = mulberry32(seed);
    const { unit, prepared, voiced } = waveToUnitLogmel(wave, this.audio, this.arrays);
    const { decoded, ...path } = await this.travel("audio", "image", unit, next, mode);
    return { image: Float32Array.from(decoded), prepared, voiced, ...path, seed, ms: performance.now() - t0 };
  }
}
