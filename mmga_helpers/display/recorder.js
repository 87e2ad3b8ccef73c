// The explorer's microphone recorder (an anywidget ES module; Python side: widgets.py, Recorder).
//
// "record" asks for the microphone and records with the browser's MediaRecorder (WebM/Opus in
// Chromium, which Python's soundfile cannot read); "stop", or max_seconds, ends it. The recording
// is decoded here, with the Web Audio API, to mono float32 samples at DECODE_RATE and sent to
// Python in a custom message {type: "recording", sample_rate} whose binary buffer holds the
// samples (little-endian float32). Anything that goes wrong in the browser (no microphone, access
// refused, an undecodable recording) is sent as {type: "error", text} and shown on one line.

const DECODE_RATE = 16000; // Hz: plenty for speech, and a 10 s recording is 640 kB on the wire

export default {
  render({ model, el }) {
    const button = document.createElement("button");
    button.className = "mmga-record jupyter-button";
    const status = document.createElement("span");
    status.className = "mmga-record-status";
    status.style.cssText = "margin-left:8px;color:#555;";

    let session = null; // {recorder, stream, timer, tick} while recording
    const idle = () => {
      button.textContent = "● record";
      button.title = "record yourself saying a digit";
    };
    idle();

    const fail = (text) => {
      status.textContent = "";
      model.send({ type: "error", text });
    };

    // a recording (a Blob in the recorder's format) -> mono float32 samples sent to Python
    const send = async (blob) => {
      const encoded = await blob.arrayBuffer();
      // an offline context decodes without touching the speakers, resampled to its own rate
      const context = new OfflineAudioContext(1, 1, DECODE_RATE);
      const audio = await context.decodeAudioData(encoded);
      const mono = new Float32Array(audio.length);
      for (let c = 0; c < audio.numberOfChannels; c++) {
        const channel = audio.getChannelData(c);
        for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / audio.numberOfChannels;
      }
      model.send({ type: "recording", sample_rate: audio.sampleRate }, undefined, [mono.buffer]);
      status.textContent = `sent ${audio.duration.toFixed(1)} s`;
    };

    const stop = () => {
      if (session && session.recorder.state !== "inactive") session.recorder.stop();
    };

    const start = async () => {
      if (!navigator.mediaDevices || !window.MediaRecorder) {
        return fail("this browser gives no microphone here (it needs https or localhost, and MediaRecorder)");
      }
      let stream;
      button.disabled = true; // one request at a time while the browser asks for permission
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (err) {
        return fail(`microphone refused or missing (${err.name}); allow it in the browser's site settings`);
      } finally {
        button.disabled = false;
      }
      const recorder = new MediaRecorder(stream);
      const chunks = [];
      const began = performance.now();
      let timer = null;
      let tick = null;
      recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
      recorder.addEventListener("stop", async () => {
        clearTimeout(timer);
        clearInterval(tick);
        stream.getTracks().forEach((t) => t.stop()); // the browser's "recording" light goes off
        session = null;
        idle();
        status.textContent = "decoding…";
        try {
          await send(new Blob(chunks, { type: recorder.mimeType }));
        } catch (err) {
          fail(`the recording could not be decoded (${err.name}: ${err.message})`);
        }
      });
      const limit = model.get("max_seconds");
      timer = setTimeout(stop, limit * 1000);
      tick = setInterval(() => {
        const seconds = ((performance.now() - began) / 1000).toFixed(1);
        status.textContent = `recording ${seconds} s (at most ${limit} s)`;
      }, 100);
      session = { recorder, stream, timer, tick };
      recorder.start();
      button.textContent = "■ stop";
      button.title = "stop and see what the system sees";
    };

    button.addEventListener("click", () => (session ? stop() : start()));
    el.append(button, status);
    // the widget removed (cell cleared or re-run): release the microphone
    return () => {
      if (session) {
        clearTimeout(session.timer);
        clearInterval(session.tick);
        session.stream.getTracks().forEach((t) => t.stop());
      }
    };
  },
};
