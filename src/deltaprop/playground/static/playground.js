// deltaprop playground: the page draws what the server sends. No arithmetic of the network
// happens here: outputs, deltas, the boundary, losses and gradients all come from the engine
// (Python). This script maps numbers to colours and positions, and sends the knobs.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token") || "";
  const LRS = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 1, 3, 10, 30, 100];
  const REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
  const CLASS_COLORS = [[245, 147, 34], [8, 119, 189], [60, 160, 80], [150, 80, 170]];
  const state = { ws: null, data: null, frame: null, history: [], nextId: 1, pendingAcks: 0, drawQueued: false,
                  frames: 0, errors: [], selected: null, retry: 0, connections: 0 };
  // for tests and the curious: the last data and frame exactly as received
  window.playground = state;

  // ---------------------------------------------------------------- colours
  // diverging: orange (negative) - white - blue (positive), TensorFlow Playground's
  const LUT = (function () {
    const lut = new Uint8ClampedArray(256 * 3);
    for (let q = 0; q < 256; q++) {
      const v = Math.max(-1, Math.min(1, (q - 128) / 127));
      const c = v < 0 ? CLASS_COLORS[0] : CLASS_COLORS[1];
      const a = Math.abs(v);
      for (let k = 0; k < 3; k++) lut[3 * q + k] = Math.round(255 + (c[k] - 255) * a);
    }
    return lut;
  })();
  function lutColor(q) { return `rgb(${LUT[3 * q]},${LUT[3 * q + 1]},${LUT[3 * q + 2]})`; }
  function valueColor(v, scale) {  // a number on a scale -> colour (display only)
    if (typeof v !== "number" || !isFinite(v) || !scale) return "#ccc";
    return lutColor(Math.max(0, Math.min(255, Math.round(128 + 127 * v / scale))));
  }
  function decode(b64) {
    const s = atob(b64), a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }
  // bytes -> pixels through a 256-entry colour table (lut: 3 bytes per entry)
  function paint(canvas, bytes, n, lut) {
    if (canvas.width !== n) { canvas.width = n; canvas.height = n; canvas._img = null; }
    const ctx = canvas.getContext("2d");
    const img = canvas._img || (canvas._img = ctx.createImageData(n, n)), px = img.data;
    for (let i = 0, m = n * n; i < m; i++) {
      const q = 3 * bytes[i], o = 4 * i;
      px[o] = lut[q]; px[o + 1] = lut[q + 1]; px[o + 2] = lut[q + 2]; px[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  const num = (x) => (typeof x === "string" ? Number(x) : x);  // "NaN", "Infinity", "-Infinity" from the server

  // ---------------------------------------------------------------- socket
  function send(obj) {
    if (!state.ws || state.ws.readyState !== 1) { showError("not connected to the server"); return null; }
    const id = state.nextId++;
    state.ws.send(JSON.stringify(Object.assign({ id: id }, obj)));
    return id;
  }
  function set(changes) { return send({ type: "set", changes: changes }); }
  function connect() {
    const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
    state.ws = ws;
    ws.onopen = () => {  // a new session on the server: forget the old one's frame
      state.retry = 0; state.pendingAcks = 0; state.frame = null; state.connections++;
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { showError("the server sent something unreadable"); return; }
      if (msg.type === "data") { state.data = msg; state.dataDirty = true; }
      else if (msg.type === "frame") { state.pendingAcks++; receive(msg); }
      else if (msg.type === "error") { state.errors.push(msg); showError(msg.message); }
      else if (msg.type === "report") { download(msg.html, msg.filename); }
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws) return;
      showError(`connection closed${ev.reason ? ": " + ev.reason : ""} (code ${ev.code}); reconnecting with a new session`);
      state.retry = Math.min(5, state.retry + 1);
      setTimeout(connect, 500 * state.retry);
    };
  }
  let errorTimer = null;
  function showError(text) {
    const el = $("error");
    el.textContent = text; el.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { el.hidden = true; }, 10000);
  }
  function download(html, filename) {
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    const a = document.createElement("a");
    a.href = url; a.download = String(filename || "deltaprop-run.html").replace(/[^\w.-]/g, "_");
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---------------------------------------------------------------- frames
  function receive(frame) {
    if (frame.history_reset) state.history = [];
    for (const h of frame.history) state.history.push(h);
    if (state.history.length > 4000) state.history = state.history.filter((_, i) => i % 2 === 0);
    state.frame = frame;
    state.frames++;
    if (!state.drawQueued) { state.drawQueued = true; requestAnimationFrame(draw); }
  }
  function draw() {
    state.drawQueued = false;
    const f = state.frame;
    if (!f) return;
    const t0 = performance.now();
    syncControls(f);
    drawNetwork(f);
    drawBoundary(f);
    drawLoss(f);
    drawDepth(f);
    drawRule(f);
    $("step-count").textContent = f.step;
    $("epoch").textContent = f.epoch.toFixed(2);
    $("train-loss").textContent = fmt(f.train_loss);
    $("test-loss").textContent = fmt(f.test_loss);
    $("play").innerHTML = f.playing ? "&#x275a;&#x275a; Pause" : "&#x25b6; Play";
    $("play").dataset.playing = f.playing ? "1" : "0";
    $("diagnosis").textContent = f.diagnosis || "";
    $("delta-note").textContent = f.delta_note || "";
    const notice = $("notice");
    notice.hidden = !f.notice; notice.textContent = f.notice || "";
    document.body.dataset.rev = f.rev;
    document.body.dataset.step = f.step;
    document.body.dataset.ready = "1";
    for (; state.pendingAcks > 0; state.pendingAcks--) send({ type: "ack" });
    state.drawMs = performance.now() - t0;  // how long this page takes to draw a frame
  }
  function fmt(x) {
    const v = num(x);
    if (typeof v !== "number" || !isFinite(v)) return String(x);
    return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(3) : v.toExponential(2);
  }

  // ---------------------------------------------------------------- controls
  function fillSelect(sel, values, label) {
    sel.innerHTML = "";
    for (const v of values) {
      const o = document.createElement("option"); o.value = String(v); o.textContent = label ? label(v) : String(v);
      sel.appendChild(o);
    }
  }
  function ensureOption(sel, v) {
    if (![...sel.options].some((o) => o.value === String(v))) {
      const o = document.createElement("option"); o.value = String(v); o.textContent = String(v); sel.appendChild(o);
    }
  }
  const CONTROLS = {  // element id -> [knob, parse]
    "dataset": ["dataset", String], "noise": ["noise", Number], "points": ["points", Number],
    "train-ratio": ["train_ratio", Number], "batch-size": ["batch_size", Number], "seed": ["seed", Number],
    "learning-rate": ["learning_rate", Number], "activation": ["activation", String], "loss": ["loss", String],
    "regularization": ["regularization", String], "reg-rate": ["reg_rate", Number], "speed": ["speed", Number],
  };
  function syncControls(f) {
    const c = f.config;
    for (const [id, [knob]] of Object.entries(CONTROLS)) {
      const el = $(id), v = c[knob];
      if (el.tagName === "SELECT") ensureOption(el, v);
      if (document.activeElement !== el && el.value !== String(v)) el.value = String(v);
      const shown = $(id + "-value");
      if (shown) shown.textContent = knob === "train_ratio" ? Math.round(v * 100) + "%" : String(v);
    }
    const mazur = c.dataset === "mazur";
    for (const id of ["noise", "points", "train-ratio", "batch-size"]) $(id).disabled = mazur;
    $("data-note").textContent = mazur ? "Mazur's example: one pattern (0.05, 0.10) with targets (0.01, 0.99); " +
      "it trains and is tested on itself. The 2-2-2 sigmoid network starts from the post's weights." : "";
  }
  function bindControls() {
    fillSelect($("learning-rate"), LRS);
    fillSelect($("reg-rate"), REG_RATES);
    for (const [id, [knob, parse]] of Object.entries(CONTROLS)) {
      const el = $(id);
      el.addEventListener("change", () => {
        const v = parse(el.value);
        if (el.type === "number" && !Number.isInteger(v)) { showError(`${knob} must be a whole number`); return; }
        set({ [knob]: v });
      });
      if (el.type === "range") el.addEventListener("input", () => {
        const shown = $(id + "-value");
        if (shown) shown.textContent = knob === "train_ratio" ? Math.round(el.value * 100) + "%" : el.value;
        if (knob === "speed") set({ speed: Number(el.value) });
      });
    }
    $("play").addEventListener("click", () => send({ type: state.frame && state.frame.playing ? "pause" : "play" }));
    $("step").addEventListener("click", () => send({ type: "step" }));
    $("reset").addEventListener("click", () => send({ type: "reset" }));
    $("save").addEventListener("click", () => send({ type: "save" }));
    $("add-layer").addEventListener("click", () => {
      const h = hidden(); if (h.length >= 6) { showError("at most 6 hidden layers"); return; }
      set({ hidden: h.concat([h.length ? h[h.length - 1] : 2]) });
    });
    $("remove-layer").addEventListener("click", () => {
      const h = hidden(); if (!h.length) { showError("there is no hidden layer to remove"); return; }
      set({ hidden: h.slice(0, -1) });
    });
    $("color-by").addEventListener("change", () => state.frame && drawNetwork(state.frame));
    $("show-test").addEventListener("change", () => state.frame && drawBoundary(state.frame));
  }
  const hidden = () => (state.frame ? state.frame.config.hidden.slice() : []);
  function changeNeurons(layer, by) {
    const h = hidden();
    const n = h[layer] + by;
    if (n < 1 || n > 16) { showError("each hidden layer has 1 to 16 neurons"); return; }
    h[layer] = n; set({ hidden: h });
  }

  // ---------------------------------------------------------------- the network
  const COL_W = 120, ROW_H = 56, TOP = 40, LEFT = 20, BOX = 44;
  function drawNetwork(f) {
    const net = $("network");
    const names = f.names, layers = names.length;
    const key = JSON.stringify(names);
    if (net.dataset.key !== key) buildNetwork(net, f), net.dataset.key = key;
    const hiddenAct = f.config.hidden.length ? f.config.activation + " hidden" : "no hidden layer";
    const outAct = f.config.loss === "cross_entropy" ? "sigmoid(net) output" : "sigmoid output";
    $("arch").textContent = `${names.map((n) => n.length).join("-")} (${hiddenAct}, ${outAct})`;
    const by = $("color-by").value;
    // heatmaps: each neuron's output over the input plane
    for (let l = 0; l < layers; l++) {
      const vals = l > 0 && f.neurons ? f.neurons[by][l - 1] : null;
      let scale = 0;
      if (vals) for (const x of vals) scale = Math.max(scale, Math.abs(num(x)) || 0);
      for (let j = 0; j < names[l].length; j++) {
        const box = net._boxes[l][j], hm = f.heatmaps[l] && f.heatmaps[l][j];
        if (!box || !hm) continue;
        paint(box.firstChild, decode(hm.data), f.thumb, LUT);
        const color = vals ? valueColor(num(vals[j]), scale) : "#ccc";
        if (box._color !== color) { box.style.borderColor = color; box._color = color; }  // (touch the DOM only on change)
        const selected = !!(state.selected && state.selected[0] === l - 1 && state.selected[1] === j);
        if (box._selected !== selected) { box.classList.toggle("selected", selected); box._selected = selected; }
      }
    }
    // links: colour and width by weight
    let wmax = 0;
    for (const W of f.weights) for (const row of W) for (const w of row) wmax = Math.max(wmax, Math.abs(num(w)) || 0);
    for (const line of net._lines) {
      const [l, j, i] = line._link, w = num(f.weights[l][j][i]);
      const color = valueColor(w, wmax), width = (0.5 + 4 * Math.min(1, Math.abs(w) / (wmax || 1))).toFixed(1);
      if (line._color !== color) { line.setAttribute("stroke", color); line._color = color; }
      if (line._width !== width) { line.setAttribute("stroke-width", width); line._width = width; }
    }
  }
  function pos(l, j, n, maxN) {
    return [LEFT + l * COL_W, TOP + (maxN - n) * ROW_H / 2 + j * ROW_H];
  }
  function buildNetwork(net, f) {
    const names = f.names, maxN = Math.max(...names.map((n) => n.length));
    const width = LEFT + (names.length - 1) * COL_W + BOX + 60, height = TOP + maxN * ROW_H + 10;
    net.innerHTML = "";
    net._boxes = names.map(() => []);
    net._lines = [];
    net.style.height = height + "px";
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("class", "links"); svg.setAttribute("width", width); svg.setAttribute("height", height);
    net.appendChild(svg);
    for (let l = 1; l < names.length; l++) {
      for (let j = 0; j < names[l].length; j++) {
        for (let i = 0; i < names[l - 1].length; i++) {
          const [x1, y1] = pos(l - 1, i, names[l - 1].length, maxN), [x2, y2] = pos(l, j, names[l].length, maxN);
          const line = document.createElementNS(svgNS, "line");
          line.setAttribute("x1", x1 + BOX); line.setAttribute("y1", y1 + BOX / 2);
          line.setAttribute("x2", x2); line.setAttribute("y2", y2 + BOX / 2);
          line.dataset.link = `${l - 1},${j},${i}`;
          line._link = [l - 1, j, i];
          net._lines.push(line);
          svg.appendChild(line);
        }
      }
    }
    const hiddenLayers = names.length - 2;
    for (let l = 0; l < names.length; l++) {
      const head = document.createElement("div");
      head.className = "layer-head";
      head.style.left = (LEFT + l * COL_W - 23) + "px"; head.style.top = "0px";
      const title = f.layer_names[l].replace(" layer", "");   // "input", "hidden 2", "output"
      head.innerHTML = `<div>${title}</div>`;
      if (l > 0 && l <= hiddenLayers) {
        const plus = document.createElement("button"), minus = document.createElement("button");
        plus.textContent = "+"; minus.textContent = "\u2212";
        plus.dataset.addNeuron = String(l - 1); minus.dataset.removeNeuron = String(l - 1);
        plus.title = "add a neuron"; minus.title = "remove a neuron";
        plus.addEventListener("click", () => changeNeurons(l - 1, 1));
        minus.addEventListener("click", () => changeNeurons(l - 1, -1));
        head.appendChild(plus); head.appendChild(minus);
      }
      net.appendChild(head);
      for (let j = 0; j < names[l].length; j++) {
        const [x, y] = pos(l, j, names[l].length, maxN);
        const box = document.createElement("button");
        box.className = "neuron" + (l === 0 ? " input" : "");
        box.dataset.layer = String(l); box.dataset.neuron = String(j); box.dataset.name = names[l][j];
        box.style.left = x + "px"; box.style.top = y + "px";
        box.title = names[l][j];
        box.appendChild(document.createElement("canvas"));
        if (l > 0) box.addEventListener("click", () => select(l - 1, j));
        net.appendChild(box);
        net._boxes[l].push(box);
        const label = document.createElement("div");
        label.className = "neuron-label"; label.textContent = names[l][j];
        label.style.left = (x + BOX + 2) + "px"; label.style.top = (y + BOX - 14) + "px";
        net.appendChild(label);
      }
    }
  }
  function select(layer, neuron, sample) {
    state.selected = [layer, neuron];
    send({ type: "select", layer: layer, neuron: neuron, sample: sample || 0 });
  }

  // ---------------------------------------------------------------- boundary, points, losses, depth
  function drawBoundary(f) {
    const canvas = $("boundary"), d = state.data;
    if (!d) return;
    const b = f.boundary, n = d.grid, bytes = decode(b.data);
    const off = state.offscreen || (state.offscreen = document.createElement("canvas"));
    if (b.kind === "binary") paint(off, bytes, n, LUT);
    else {  // the predicted class, paler where the network is less sure
      const conf = decode(b.confidence), idx = new Uint8Array(n * n), lut = new Uint8ClampedArray(256 * 3);
      const shades = 256 / CLASS_COLORS.length | 0;
      for (let k = 0; k < 256; k++) {
        const c = CLASS_COLORS[Math.min(CLASS_COLORS.length - 1, k / shades | 0)], a = 0.25 + 0.5 * (k % shades) / (shades - 1);
        for (let m = 0; m < 3; m++) lut[3 * k + m] = Math.round(255 + (c[m] - 255) * a);
      }
      for (let i = 0; i < n * n; i++) idx[i] = (bytes[i] % CLASS_COLORS.length) * shades + (conf[i] * (shades - 1) / 255 | 0);
      paint(off, idx, n, lut);
    }
    const ctx = canvas.getContext("2d"), W = canvas.width;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(off, 0, 0, W, W);
    const e = d.extent, px = (x) => (x + e) / (2 * e) * W, py = (y) => (e - y) / (2 * e) * W;
    const drawSet = (set, test) => {  // one path per class: a fill and a stroke each
      for (let k = 0; k < CLASS_COLORS.length; k++) {
        ctx.beginPath();
        let any = false;
        for (let i = 0; i < set.y.length; i++) {
          if (set.y[i] % CLASS_COLORS.length !== k) continue;
          const x = px(num(set.X[i][0])), y = py(num(set.X[i][1]));
          ctx.moveTo(x + 3.2, y); ctx.arc(x, y, 3.2, 0, 2 * Math.PI); any = true;
        }
        if (!any) continue;
        const c = CLASS_COLORS[k];
        ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`; ctx.fill();
        ctx.lineWidth = 1; ctx.strokeStyle = test ? "#000" : "#fff"; ctx.stroke();
      }
    };
    drawSet(d.train, false);
    if ($("show-test").checked) drawSet(d.test, true);
  }
  function drawLoss() {
    const canvas = $("loss-chart"), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    const h = state.history;
    if (h.length < 2) return;
    let top = -Infinity, bottom = Infinity;
    for (const [, a, b] of h) for (const v of [num(a), num(b)]) if (isFinite(v)) { top = Math.max(top, v); bottom = Math.min(bottom, v); }
    if (!isFinite(top)) return;
    bottom = Math.min(bottom, 0.9 * top);
    const span = Math.max(1e-12, top - bottom);
    const s0 = h[0][0], s1 = h[h.length - 1][0] || 1;
    const line = (k, color) => {
      ctx.beginPath(); ctx.strokeStyle = color; ctx.lineWidth = 1.5;
      h.forEach((p, i) => {
        const v = Math.min(top, num(p[k])), x = (p[0] - s0) / Math.max(1, s1 - s0) * W, y = H - 2 - (v - bottom) / span * (H - 4);
        if (!isFinite(y)) return;
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      });
      ctx.stroke();
    };
    line(2, "#333"); line(1, "#999");
  }
  function drawDepth(f) {  // mean |delta| per layer, bars on a log scale; rows built once per shape
    const el = $("depth");
    if (!f.depth) { el.innerHTML = ""; el._key = null; return; }
    const key = f.depth.map((r) => r.layer).join("|");
    if (el._key !== key) {
      el.innerHTML = ""; el._key = key;
      el._rows = f.depth.map((r) => {
        const row = document.createElement("div"), name = document.createElement("span");
        const bar = document.createElement("i"), text = document.createElement("span");
        const ratio = document.createElement("span");
        row.className = "bar"; row.dataset.depthLayer = r.layer;
        name.className = "name"; name.textContent = r.layer; ratio.className = "ratio";
        row.append(name, bar, text, ratio); el.appendChild(row);
        return { row, bar, text, ratio };
      });
    }
    const logs = f.depth.map((r) => Math.log10(Math.max(1e-12, num(r.mean_abs_delta[0]) || 1e-12)));
    const lo = Math.min(...logs) - 1, hi = Math.max(...logs);
    f.depth.forEach((r, k) => {
      const e = el._rows[k];
      e.row.dataset.value = String(r.mean_abs_delta[0]);
      e.bar.style.width = (10 + 110 * (logs[k] - lo) / Math.max(1e-9, hi - lo)).toFixed(0) + "px";
      e.text.textContent = r.mean_abs_delta[1];
      e.ratio.textContent = r.ratio ? `×${r.ratio[1]} of the layer after it` : "";
    });
  }

  // ---------------------------------------------------------------- the layer rule
  // The panel is built once per neuron/sample/shape; each frame then only rewrites its texts.
  const par = (text) => (text.startsWith("-") ? `(${text})` : text);  // a negative factor, as trace writes it
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function numberCell(get, key, updaters) {  // a td showing [value, text] = get(rule)
    const td = el("td");
    if (key) td.dataset.key = key;
    updaters.push((r) => {
      const pair = get(r);
      td.textContent = pair ? pair[1] : "";
      if (pair) td.dataset.value = String(pair[0]); else delete td.dataset.value;
    });
    return td;
  }
  function table(id, head, rows) {
    const t = el("table"), tr = el("tr");
    t.id = id;
    for (const h of head) tr.appendChild(el("th", h));
    t.appendChild(tr);
    for (const r of rows) t.appendChild(r);
    return t;
  }
  function formulaText(r) {
    const n = r.name;
    if (r.output) {
      return `delta_${n} = dE/dout_${n} × f'(net_${n}) = ${par(r.dout[1])} × ${par(r.fprime[1])} = ${r.delta[1]}` +
        `   (output layer, loss ${r.loss}; target ${r.target[1]}` +
        (r.probability ? `, probability sigmoid(net) ${r.probability[1]}` : "") + ")";
    }
    const sym = r.terms.map((t) => `${t.weight} × delta_${t.to}`).join(" + ");
    const vals = r.terms.map((t) => `${par(t.w[1])} × ${par(t.delta[1])}`).join(" + ");
    return `delta_${n} = f'(net_${n}) × (${sym})\n        = ${par(r.fprime[1])} × (${vals})\n` +
      `        = ${par(r.fprime[1])} × ${par(r.dout[1])} = ${r.delta[1]}`;
  }
  // w(h1.2→h2.1) names its link; the post's w5 and a bias get "(from h1)" / "(to o1)" beside them
  const linkName = (weight, dir, neuron) => (weight.includes("\u2192") ? weight : `${weight} (${dir} ${neuron})`);
  function buildRule(box, r) {
    const up = [];
    box.innerHTML = "";
    const note = el("p", "", "note");
    up.push((r, f) => { note.textContent = f.delta_note + (r.per_sample_factor > 1 ?
      ` This sample's own delta is ${r.per_sample_factor} × delta.` : ""); });
    box.appendChild(note);
    const pick = el("label", "sample of the batch ");
    const sel = el("select");
    sel.id = "rule-sample";
    for (let s = 0; s < r.batch && s < 200; s++) { const o = el("option", String(s)); o.value = String(s); sel.appendChild(o); }
    sel.value = String(r.sample);
    sel.addEventListener("change", () => select(r.layer, r.neuron, Number(sel.value)));
    pick.appendChild(sel);
    box.appendChild(pick);
    const formula = el("div", "", "formula");
    up.push((r) => { formula.textContent = formulaText(r); });
    box.appendChild(formula);
    const row = (label, get, key) => { const tr = el("tr"); tr.append(el("td", label), numberCell(get, key, up)); return tr; };
    const rows = [row("net = sum of w × input + b", (r) => r.net, "net"), row("out = f(net)", (r) => r.out, "out"),
                  row("f'(net)", (r) => r.fprime, "fprime"),
                  row(r.output ? "dE/dout" : "sum of w × delta (= dE/dout)", (r) => r.dout, "dout"),
                  row("delta = f'(net) × dE/dout", (r) => r.delta, "delta"),
                  row("batch mean of delta", (r) => r.delta_batch_mean, "delta_batch_mean")];
    if (r.per_sample_factor > 1) {
      rows.push(row(`this sample's own delta (of its own loss) = ${r.per_sample_factor} × delta`,
                    (r) => r.per_sample_delta, "per_sample_delta"));
    }
    if (r.output) rows.splice(2, 0, row("target", (r) => r.target, "target"));
    box.appendChild(table("rule-numbers", ["this neuron", "value"], rows));
    if (!r.output) {
      const trs = r.terms.map((t, m) => {
        const tr = el("tr"), name = el("td");
        up.push((r) => { name.textContent = linkName(r.terms[m].weight, "to", r.terms[m].to); });
        tr.append(name, numberCell((r) => r.terms[m].w, "w", up), numberCell((r) => r.terms[m].delta, "delta", up),
                  numberCell((r) => r.terms[m].product, "product", up));
        return tr;
      });
      box.appendChild(table("rule-terms", ["weight to the next layer", "w", "delta there", "w × delta"], trs));
    }
    const reg = r.regularization !== "none" && num(r.reg_rate[0]) > 0;
    const trs = r.incoming.map((w, i) => {
      const tr = el("tr"), name = el("td");
      up.push((r) => { name.textContent = linkName(r.incoming[i].weight, "from", r.incoming[i].from); });
      tr.append(name, numberCell((r) => r.incoming[i].w, "w", up), numberCell((r) => r.incoming[i].input, "input", up),
                numberCell((r) => r.incoming[i].product, "product", up), numberCell((r) => r.incoming[i].grad, "grad", up));
      if (reg) tr.append(numberCell((r) => r.incoming[i].penalty, "penalty", up));
      tr.append(numberCell((r) => r.incoming[i].updated, "updated", up));
      return tr;
    });
    const head = ["incoming weight", "value", "input (this sample)", "delta × input (this sample)",
                  "gradient dE/dw (batch sum)"];
    if (reg) head.push(`+ ${r.regularization.toUpperCase()} term`);
    head.push(`updated = w - ${r.lr[1]} × gradient`);
    box.appendChild(table("rule-incoming", head, trs));
    const det = el("details"), pre = el("pre");
    pre.id = "rule-text";
    up.push((r) => {
      const text = r.text === null ? "(pause to see it: the numbers change every frame while playing)" : r.text;
      if (pre.textContent !== text) pre.textContent = text;
    });
    det.append(el("summary", "the trace as dp.explain.trace prints it (all layers)"), pre);
    box.appendChild(det);
    return up;
  }
  function drawRule(f) {
    const box = $("rule"), r = f.rule;
    if (!r) {  // none selected (or a new network cleared the selection)
      box.innerHTML = ""; box._key = null; state.selected = null;
      $("rule-title").textContent = "(click a neuron)";
      return;
    }
    state.selected = [r.layer, r.neuron];
    if (document.activeElement && document.activeElement.id === "rule-sample") return;  // the user is choosing
    const reg = r.regularization !== "none" && num(r.reg_rate[0]) > 0;
    const key = [r.layer, r.neuron, r.sample, r.batch, r.incoming.length, r.terms ? r.terms.length : 0, reg, r.lr[1],
                 r.output, JSON.stringify(f.names)].join("|");
    if (box._key !== key) { box._updaters = buildRule(box, r); box._key = key; }
    $("rule-title").textContent = `${r.name}: ${r.title}, ${r.activation}; step ${r.step}'s numbers (the weights ` +
      `shown, the next batch of ${r.batch}), sample ${r.sample} of the batch (training point ${r.sample_index})`;
    for (const u of box._updaters) u(r, f);
  }

  bindControls();
  connect();
})();
