// The explorer's drawing canvas (an anywidget ES module; Python side: widgets.py, DrawingCanvas).
//
// Pointer events cover the mouse, touch screens and pens alike. Each stroke is drawn locally; when
// the pointer is released the whole picture goes to Python as one PNG, in a custom message
// {type: "drawing", width, height} with the PNG bytes as its binary buffer. "clear" wipes the
// canvas in the browser only: an empty canvas has nothing to hear.

export default {
  render({ model, el }) {
    const side = model.get("side");
    const canvas = document.createElement("canvas");
    canvas.width = side;
    canvas.height = side;
    canvas.className = "mmga-canvas";
    canvas.title = "draw a digit; it is heard when you lift the pen";
    // touch-action: none keeps a finger's stroke from scrolling the notebook
    canvas.style.cssText =
      `width:${side}px;height:${side}px;border:1px solid #999;border-radius:4px;` +
      "background:#fff;touch-action:none;cursor:crosshair;display:block;";
    const ctx = canvas.getContext("2d");

    const wipe = () => {
      ctx.fillStyle = "#fff"; // opaque white paper: the PNG reads as dark ink on light
      ctx.fillRect(0, 0, side, side);
    };
    wipe();

    // canvas pixels under a pointer event, whatever the canvas's size on screen
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return [((e.clientX - r.left) * side) / r.width, ((e.clientY - r.top) * side) / r.height];
    };
    const segment = (a, b) => {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = model.get("pen_width");
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
    };

    let last = null; // the stroke's previous point; null while no pointer is down
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture(e.pointerId); // keep receiving moves that leave the canvas
      last = at(e);
      segment(last, last); // a tap leaves a dot
      e.preventDefault();
    });
    canvas.addEventListener("pointermove", (e) => {
      if (last === null) return;
      // a pen or fast mouse reports several positions per frame: draw through each of them
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
      for (const ev of events.length ? events : [e]) {
        const p = at(ev);
        segment(last, p);
        last = p;
      }
    });
    const release = () => {
      if (last === null) return;
      last = null;
      canvas.toBlob(async (png) => {
        const bytes = await png.arrayBuffer();
        model.send({ type: "drawing", width: side, height: side }, undefined, [bytes]);
      }, "image/png");
    };
    canvas.addEventListener("pointerup", release);
    canvas.addEventListener("pointercancel", release);

    const clear = document.createElement("button");
    clear.textContent = "clear";
    clear.className = "mmga-clear jupyter-button";
    clear.style.cssText = "margin-top:4px;";
    clear.addEventListener("click", wipe);

    el.append(canvas, clear);
  },
};
