// The live page of the book (book/live.md): draw a digit and hear it, speak or drop a recording
// and see it, computed in this browser from the run's web export. Every failure is one line in
// the page (never a blank, never an error in the console).
//
// The page's markup names where things are: <div id="mmga-live" data-web="../web/"
// data-live="../live/">. live/state.json, written when the book is built, says whether the export
// and onnxruntime-web were shipped; window.mmgaLive exposes the loaded run to tests and benchmarks.

import { Run } from "./model.js";
import { AudioError, wavBytes } from "./audio.js";
import { DrawingError } from "./digits.js";

const root = document.getElementById("mmga-live");
const api = { run: null, last: {}, error: null };
window.mmgaLive = api;

const $ = (sel) => root.querySelector(sel);
function say(where, text, bad = false) {
  const el = $(where);
  el.textContent = text;
  el.classList.toggle("mmga-bad", bad);
}

// the page's own words for what went wrong; anything unexpected is named, not thrown
function why(err) {
  if (err instanceof DrawingError || err instanceof AudioError || err.name === "Error") return err.message;
  return `${err.name || "Error"}: ${err.message || err}`;
}

// a [28 * 28] picture in [0, 1] drawn into a canvas, white ink on black as the model sees it
function showPicture(canvas, pixels, side = 28) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const v = Math.round(Math.min(Math.max(pixels[i], 0), 1) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  canvas.width = side;
  canvas.height = side;
  ctx.putImageData(img, 0, 0);
}

// an <audio> player of a wave (a WAV blob), made on the first result: an empty player before
// there is anything to play would be a broken control
function play(slot, id, wave, rate) {
  let audio = $(`#${id}`);
  if (!audio) {
    audio = document.createElement("audio");
    audio.id = id;
    audio.controls = true;
    $(slot).append(audio);
  }
  if (audio.dataset.url) URL.revokeObjectURL(audio.dataset.url);
  audio.dataset.url = URL.createObjectURL(new Blob([wavBytes(wave, rate)], { type: "audio/wav" }));
  audio.src = audio.dataset.url;
}

function nextSeed() {
  const field = $("#mmga-seed");
  const seed = Math.max(0, Math.floor(Number(field.value) || 0));
  field.value = seed + 1; // the next result varies; typing a seed back repeats it
  return seed;
}

function pathLine(r, from, to) {
  return `${from} cluster ${r.source} → ${to} cluster ${r.target} (the brain's link, strength ` +
    `${r.strength.toFixed(3)}), training member ${r.member}, seed ${r.seed}, ${r.ms.toFixed(0)} ms`;
}

// -- drawing -> hear ----------------------------------------------------------------------------------
function setUpCanvas() {
  const canvas = $("#mmga-canvas");
  const side = canvas.width;
  const ctx = canvas.getContext("2d");
  const wipe = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, side, side); };
  wipe();
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * side) / r.width, ((e.clientY - r.top) * side) / r.height];
  };
  const segment = (a, b) => {
    ctx.strokeStyle = "#000"; ctx.lineWidth = side / 14; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  };
  let last = null;
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
    segment(last, last);
    e.preventDefault();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (last === null) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) { const p = at(ev); segment(last, p); last = p; }
  });
  const lift = () => { if (last !== null) { last = null; hear(); } };
  canvas.addEventListener("pointerup", lift);
  canvas.addEventListener("pointercancel", lift);
  $("#mmga-clear").addEventListener("click", () => { wipe(); say("#mmga-hear-line", "the canvas is empty: draw a digit"); });
  $("#mmga-hear").addEventListener("click", hear);

  async function hear() {
    if (!api.run) return say("#mmga-hear-line", "the model is not loaded (see the line at the top)", true);
    const { data, width, height } = ctx.getImageData(0, 0, side, side);
    say("#mmga-hear-line", "hearing…");
    try {
      const r = await api.run.hear({ data, width, height, channels: 4 }, nextSeed(), $("#mmga-mode").value);
      api.last.hear = r;
      showPicture($("#mmga-normalized"), r.normalized);
      play("#mmga-heard-slot", "mmga-heard", r.wave, api.run.audio.sample_rate);
      say("#mmga-hear-line", `heard: ${pathLine(r, "image", "audio")}`);
    } catch (err) {
      say("#mmga-hear-line", `⚠ ${why(err)}`, true);
    }
  }
}

// -- recording or a file -> see ---------------------------------------------------------------------
// any recording or file the browser can decode -> mono float32 at the run's rate (the browser's
// resampler; Python's is soxr, so a recording's samples differ slightly from Python's reading)
async function decode(bytes) {
  const rate = api.run.audio.sample_rate;
  const context = new OfflineAudioContext(1, 1, rate);
  let audio;
  try {
    audio = await context.decodeAudioData(bytes);
  } catch (err) {
    throw new AudioError(`not an audio file this browser can decode (${err.name || "error"}); give a WAV, OGG, MP3 or WebM recording`);
  }
  const mono = new Float32Array(audio.length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    const ch = audio.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += ch[i] / audio.numberOfChannels;
  }
  return mono;
}

async function see(bytes, what) {
  if (!api.run) return say("#mmga-see-line", "the model is not loaded (see the line at the top)", true);
  say("#mmga-see-line", `seeing ${what}…`);
  try {
    const wave = await decode(bytes);
    if (wave.length > 30 * api.run.audio.sample_rate) throw new AudioError("over 30 s; give a clip of one spoken digit");
    const r = await api.run.see(wave, nextSeed(), $("#mmga-mode").value);
    r.input = wave;
    api.last.see = r;
    showPicture($("#mmga-seen"), r.image);
    play("#mmga-seen-slot", "mmga-seen-clip", r.prepared, api.run.audio.sample_rate);
    say("#mmga-see-line", `${what} seen: ${pathLine(r, "audio", "image")}`);
  } catch (err) {
    say("#mmga-see-line", `⚠ ${why(err)}`, true);
  }
}

function setUpRecorder() {
  const button = $("#mmga-record");
  let session = null;
  const idle = () => { button.textContent = "● record"; };
  idle();
  const stop = () => { if (session && session.recorder.state !== "inactive") session.recorder.stop(); };
  button.addEventListener("click", async () => {
    if (session) return stop();
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      return say("#mmga-see-line", "⚠ this browser gives no microphone here (it needs https or localhost, and MediaRecorder)", true);
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      return say("#mmga-see-line", `⚠ microphone refused or missing (${err.name}); allow it in the browser's site settings`, true);
    }
    const recorder = new MediaRecorder(stream);
    const chunks = [];
    recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
    recorder.addEventListener("stop", async () => {
      clearTimeout(session.timer);
      stream.getTracks().forEach((t) => t.stop());
      session = null;
      idle();
      const blob = new Blob(chunks, { type: recorder.mimeType });
      await see(await blob.arrayBuffer(), "your recording");
    });
    session = { recorder, timer: setTimeout(stop, 5000) };
    recorder.start();
    button.textContent = "■ stop";
    say("#mmga-see-line", "recording (at most 5 s): say a digit, then stop");
  });
  const pick = $("#mmga-file");
  const take = async (file) => file && see(await file.arrayBuffer(), `“${file.name}”`);
  pick.addEventListener("change", () => take(pick.files[0]));
  const zone = $("#mmga-drop");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("mmga-over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("mmga-over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("mmga-over");
    take(e.dataTransfer.files[0]);
  });
}

// -- start ----------------------------------------------------------------------------------------
async function start() {
  const web = new URL(root.dataset.web, document.baseURI);
  const live = new URL(root.dataset.live, document.baseURI);
  setUpCanvas();
  setUpRecorder();
  if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly; the models need it (try a current Firefox, Chrome or Safari)");
  const state = await (await fetch(new URL("state.json", live))).json();
  if (!state.ready) throw new Error(state.why);
  say("#mmga-status", "loading the models…");
  const t0 = performance.now();
  api.run = await Run.load(web, new URL("ort/", live).href);
  const m = api.run.manifest;
  api.loadMs = performance.now() - t0;
  say("#mmga-status", `ready: the ${m.run.profile} run (seed ${m.run.seed}), ${m.clusterers.image.n_clusters} image and ` +
    `${m.clusterers.audio.n_clusters} audio clusters, loaded in ${api.loadMs.toFixed(0)} ms`);
  root.classList.add("mmga-ready");
}

api.ready = start().catch((err) => {
  api.error = why(err);
  say("#mmga-status", `⚠ the live page cannot run here: ${api.error}`, true);
  root.classList.add("mmga-failed");
});
