/* deltaprop report: draws the network, its outputs and its deltas from the weights embedded
 * in the page. Every forward pass, delta and decision boundary is computed here in float64
 * (plain JS numbers), from the weights stored at full precision. Fetches nothing. */
(function () {
  "use strict";

  // ---------------------------------------------------------------- %.9g, as Python does it
  // The double is expanded to its exact decimal value with BigInt, then rounded half-to-even
  // to `prec` significant digits: the same correctly rounded result as Python's '%.9g' % x.
  const bitsView = new DataView(new ArrayBuffer(8));

  function exactDecimal(a) {
    // a > 0 and finite -> [digits, p] with a == BigInt(digits) * 10**p exactly
    bitsView.setFloat64(0, a);
    const bits = bitsView.getBigUint64(0);
    const biased = Number((bits >> 52n) & 0x7ffn);
    let mant = bits & 0xfffffffffffffn;
    let e2;
    if (biased === 0) {
      e2 = -1074;
    } else {
      mant |= 0x10000000000000n;
      e2 = biased - 1075;
    }
    if (e2 >= 0) return [(mant << BigInt(e2)).toString(), 0];
    // mant * 2**e2 == mant * 5**(-e2) / 10**(-e2)
    return [(mant * 5n ** BigInt(-e2)).toString(), e2];
  }

  function stripZeros(s) {
    if (s.indexOf(".") < 0) return s;
    s = s.replace(/0+$/, "");
    return s.endsWith(".") ? s.slice(0, -1) : s;
  }

  function formatG(x, prec) {
    if (Number.isNaN(x)) return "nan";
    if (x === Infinity) return "inf";
    if (x === -Infinity) return "-inf";
    const sign = x < 0 || Object.is(x, -0) ? "-" : "";
    const a = Math.abs(x);
    if (a === 0) return sign + "0";
    const [d, p] = exactDecimal(a);
    let exp = d.length - 1 + p; // decimal exponent of the leading digit
    let digits;
    if (d.length <= prec) {
      digits = d.padEnd(prec, "0");
    } else {
      digits = d.slice(0, prec);
      const next = d.charCodeAt(prec) - 48;
      let up = next > 5;
      if (next === 5) {
        // a tie only when every later digit is zero: then round half to even
        up = /[1-9]/.test(d.slice(prec + 1)) || (digits.charCodeAt(prec - 1) - 48) % 2 === 1;
      }
      if (up) {
        let r = (BigInt(digits) + 1n).toString();
        if (r.length > prec) {
          r = r.slice(0, prec);
          exp += 1;
        }
        digits = r;
      }
    }
    let body;
    if (exp >= -4 && exp < prec) {
      if (exp >= 0) body = digits.slice(0, exp + 1) + "." + digits.slice(exp + 1);
      else body = "0." + "0".repeat(-exp - 1) + digits;
      body = stripZeros(body);
    } else {
      const ae = Math.abs(exp);
      body = stripZeros(digits[0] + "." + digits.slice(1)) +
        "e" + (exp < 0 ? "-" : "+") + (ae < 10 ? "0" : "") + ae;
    }
    return sign + body;
  }

  const g9 = (x) => formatG(x, 9);

  function short(x) {
    // a compact label for inside a circle (the full %.9g value is in the tooltip and panel)
    if (!Number.isFinite(x)) return g9(x);
    if (x === 0) return "0";
    const ax = Math.abs(x);
    if (ax >= 1000 || ax < 0.01) return x.toExponential(1).replace("e+", "e");
    return stripZeros(x.toPrecision(ax < 0.1 ? 2 : 3));
  }

  // ---------------------------------------------------------------- data
  const SPECIAL = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };
  const data = JSON.parse(document.getElementById("deltaprop-data").textContent, (k, v) =>
    typeof v === "string" && k !== "title" && k !== "dataset" && k !== "description" &&
    Object.prototype.hasOwnProperty.call(SPECIAL, v) ? SPECIAL[v] : v);

  const sizes = data.sizes;
  const L = sizes.length - 1; // number of Linear layers; neuron layers are 0..L
  const hiddenAct = data.activation;
  const outputKind = data.output;
  const X = data.X;
  const Y = data.y;
  const T = data.targets || null; // (N, K) float targets of the "mse" and "sse" outputs
  const K = sizes[sizes.length - 1];
  const squares = outputKind === "mse" || outputKind === "sse";
  const steps = data.steps;
  const losses = data.loss;
  const NEG_SLOPE = 0.01; // leaky_relu's negative slope (PyTorch's default)

  // ---------------------------------------------------------------- the maths (float64)
  function sigmoid(z) {
    return 1 / (1 + Math.exp(-z));
  }

  // GELU's Phi(x) = erfc(-x / sqrt 2) / 2, to ~1e-12 relative everywhere (the engine's erfc agrees to
  // its last digits): the series of erf below 2.5, where erfc is not yet small, and the continued
  // fraction of erfc above, where it is (no cancellation in the tail that GELU's negative side reads)
  const INV_SQRT_2PI = 0.3989422804014327;

  function erfcPos(a) {
    if (a < 2.5) {   // erf(a) = 2/sqrt(pi) e^(-a^2) sum 2^n a^(2n+1) / (1 3 5 ... (2n+1)): positive terms
      let term = a, sum = a;
      for (let n = 1; Math.abs(term) > 1e-17 * sum; n++) {
        term *= (2 * a * a) / (2 * n + 1);
        sum += term;
      }
      return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
    }
    let f = a;   // erfc(a) = e^(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...))))
    for (let k = 60; k >= 1; k--) f = a + k / 2 / f;
    return Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  }

  function ndtr(x) {
    const u = -x / Math.SQRT2;
    return (u >= 0 ? erfcPos(u) : 2 - erfcPos(-u)) * 0.5;
  }

  function activate(name, z) {
    switch (name) {
      case "gelu": return z * ndtr(z);
      case "tanh": return Math.tanh(z);
      case "sigmoid": return sigmoid(z);
      case "relu": return z > 0 ? z : 0;
      case "leaky_relu": return z > 0 ? z : z * NEG_SLOPE;
      default: throw new Error("unknown activation " + name);
    }
  }

  function derivative(name, net, out) {
    // f'(net), written the way the textbooks write it (PyTorch's choice at 0 for relu)
    switch (name) {
      case "gelu": return ndtr(net) + (Math.exp((net * net) * -0.5) * INV_SQRT_2PI) * net;
      case "tanh": return 1 - out * out;
      case "sigmoid": return out * (1 - out);
      case "relu": return net > 0 ? 1 : 0;
      case "leaky_relu": return net > 0 ? 1 : NEG_SLOPE;
      default: throw new Error("unknown activation " + name);
    }
  }

  function derivativeText(name, net, out) {
    // f'(net) with the numbers put in
    const o = paren(out);
    switch (name) {
      case "tanh": return "1 − out² = 1 − " + o + "²";
      case "gelu": return "Φ(net) + net · φ(net), net = " + g9(net);
      case "sigmoid": return "out · (1 − out) = " + o + " · (1 − " + o + ")";
      case "relu": return "(1 if net > 0 else 0), net = " + g9(net);
      case "leaky_relu": return "(1 if net > 0 else " + NEG_SLOPE + "), net = " + g9(net);
      default: return name + "′(net)";
    }
  }

  function forward(P, x) {
    // nets[l][j], outs[l][j] for neuron layers l = 0..L (layer 0: the input itself)
    const nets = [x.slice()];
    const outs = [x.slice()];
    let a = x;
    for (let l = 0; l < L; l++) {
      const W = P[l].W, b = P[l].b, n = b.length;
      const z = new Array(n);
      for (let j = 0; j < n; j++) {
        const row = W[j];
        let s = 0;
        for (let i = 0; i < a.length; i++) s += row[i] * a[i];
        z[j] = s + b[j];
      }
      let o;
      if (l < L - 1) {
        o = z.map((v) => activate(hiddenAct, v));
      } else if (outputKind === "sigmoid" || squares) {
        o = z.map(sigmoid);
      } else {
        let m = -Infinity;
        for (const v of z) if (v > m) m = v;
        const e = z.map((v) => Math.exp(v - m));
        let s = 0;
        for (const v of e) s += v;
        o = e.map((v) => v / s);
      }
      nets.push(z);
      outs.push(o);
      a = o;
    }
    return { nets, outs };
  }

  function backward(P, fw, label) {
    // deltas[l][j] = dLoss/dnet for this one sample; layer 0: dLoss/dx
    const deltas = new Array(L + 1);
    const back = new Array(L + 1); // back[l][j] = sum_k w_kj delta_k (before f')
    const out = fw.outs[L];
    // label: the class (sigmoid, softmax) or the target vector t (mse, sse)
    if (outputKind === "sigmoid") deltas[L] = [out[0] - label];
    else if (outputKind === "mse") deltas[L] = out.map((o, k) => (2 * (o - label[k]) / K) * (o * (1 - o)));
    else if (outputKind === "sse") deltas[L] = out.map((o, k) => (o - label[k]) * (o * (1 - o)));
    else deltas[L] = out.map((p, k) => p - (k === label ? 1 : 0));
    for (let l = L - 1; l >= 0; l--) {
      const W = P[l].W, dNext = deltas[l + 1], n = sizes[l];
      const s = new Array(n);
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let k = 0; k < dNext.length; k++) acc += W[k][j] * dNext[k];
        s[j] = acc;
      }
      back[l] = s;
      if (l === 0) deltas[0] = s.slice();
      else deltas[l] = s.map((v, j) => derivative(hiddenAct, fw.nets[l][j], fw.outs[l][j]) * v);
    }
    return { deltas, back };
  }

  function targetOf(n) {
    return squares ? T[n] : Y[n];
  }

  // ---------------------------------------------------------------- state and elements
  const state = {
    step: steps.length - 1,
    sample: 0,
    backward: false,
    log: false,
    selected: null, // [layer, neuron]
    playing: null,
  };
  let current = null; // {P, fw, bw}

  const $ = (id) => document.getElementById(id);
  const stepInput = $("step");
  const sampleInput = $("sample");
  const backInput = $("backward");
  const netSvg = $("net");
  const SVGNS = netSvg.namespaceURI;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVGNS, name);
    if (attrs) for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function h(tag, attrs, text) {
    const node = document.createElement(tag);
    if (attrs) for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---------------------------------------------------------------- colours
  const NEG = [43, 108, 176]; // blue
  const POS = [221, 107, 32]; // orange
  const CLASS = ["#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#b7791f",
    "#319795", "#d53f8c", "#4a5568", "#718096"];

  const DECADES = 6; // the log colour scale spans |δ| from max / 10^6 to max

  function shade(v, max) {
    // v / max on the linear scale; on the log scale sign(v) * (log10|v| - log10(max) + DECADES) / DECADES
    if (!Number.isFinite(v)) return NaN;
    if (!state.log || v === 0) return v / max;
    const u = (Math.log10(Math.abs(v)) - Math.log10(max) + DECADES) / DECADES;
    return Math.sign(v) * Math.max(0, Math.min(1, u));
  }

  function diverging(t) {
    if (!Number.isFinite(t)) return "rgb(160,160,160)";
    const c = t < 0 ? NEG : POS;
    const u = Math.min(1, Math.abs(t));
    const mix = (k) => Math.round(255 + (c[k] - 255) * u);
    return "rgb(" + mix(0) + "," + mix(1) + "," + mix(2) + ")";
  }

  function hexRgb(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }

  // ---------------------------------------------------------------- names
  // the names of deltaprop.explain.names, everywhere the same: inputs i1.., hidden h1.. (one hidden
  // layer) or h1.1, h2.3.. (several: h<layer>.<neuron>), outputs o1..; numbered from 1
  function layerName(l) {
    if (l === 0) return "input";
    if (l === L) return "output";
    return L === 2 ? "hidden" : "hidden " + l;
  }

  function neuronName(l, j) {
    if (l === 0) return "i" + (j + 1);
    if (l === L) return "o" + (j + 1);
    return L === 2 ? "h" + (j + 1) : "h" + l + "." + (j + 1);
  }

  // the weight on the link from neuron i of layer l into neuron j of layer l + 1: Mazur's w1..w8 in
  // his example, else w(i2→h1.3)
  const MAZUR = data.dataset === "mazur" && sizes.join(",") === "2,2,2";

  function weightName(l, j, i) {
    if (MAZUR) return "w" + (4 * l + 2 * j + i + 1);
    return "w(" + neuronName(l, i) + "→" + neuronName(l + 1, j) + ")";
  }

  // ---------------------------------------------------------------- network drawing
  const NET_W = 620;
  const NET_H = 380;
  const neurons = []; // neurons[l][j] = {circle, label, x, y}
  const links = []; // links[l][j][i] = line from (l, i) to (l + 1, j)
  let radius = 20;
  let showNames = true;

  function buildNetwork() {
    netSvg.setAttribute("viewBox", "0 0 " + NET_W + " " + NET_H);
    const maxN = Math.max(...sizes);
    const top = 46, bottom = 26;
    const usable = NET_H - top - bottom;
    const gapMin = usable / maxN;
    // a name sits above its circle: the gap must hold the circle (2r), the name (12px) and air (6px)
    const NAME_H = 18;
    showNames = (gapMin - NAME_H) / 2 >= 8;
    radius = showNames ? Math.min(22, (gapMin - NAME_H) / 2) : Math.max(3, Math.min(22, gapMin * 0.36));
    // the output column leaves room on its right for each output's target label
    const xs = sizes.map((_, l) => 60 + (l * (NET_W - 190)) / Math.max(1, L));
    const linkGroup = el("g", { class: "links" }, netSvg);
    const nodeGroup = el("g", { class: "nodes" }, netSvg);
    for (let l = 0; l <= L; l++) {
      const n = sizes[l];
      const gap = usable / n;
      const col = [];
      const caption = el("text", { x: xs[l], y: 18, class: "layer-caption" }, netSvg);
      caption.textContent = layerName(l);
      const sub = el("text", { x: xs[l], y: 33, class: "layer-sub" }, netSvg);
      sub.textContent = l === 0 ? n + " values" : l === L ? outputKind : hiddenAct;
      for (let j = 0; j < n; j++) {
        const y = top + gap * (j + 0.5);
        const circle = el("circle", {
          cx: xs[l], cy: y, r: radius, class: "neuron", tabindex: "0", role: "button",
          "data-layer": l, "data-neuron": j,
        }, nodeGroup);
        const tip = el("title", null, circle);
        const label = el("text", { x: xs[l], y: y + 4, class: "neuron-value" }, nodeGroup);
        if (radius < 13) label.setAttribute("display", "none");
        const name = el("text", { x: xs[l], y: y - radius - 4, class: "neuron-name" }, nodeGroup);
        name.textContent = neuronName(l, j);
        if (!showNames) name.setAttribute("display", "none"); // (its name is in the circle's tooltip)
        circle.addEventListener("click", () => selectNeuron(l, j));
        circle.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            selectNeuron(l, j);
          }
        });
        col.push({ circle, label, tip, x: xs[l], y });
      }
      neurons.push(col);
    }
    // one target label beside each output neuron (t = 0.99; y = 1; or an arrow at the true class)
    for (let j = 0; j < sizes[L]; j++) {
      const t = el("text", { x: xs[L] + radius + 8, y: neurons[L][j].y + 4, class: "target-label",
        "data-target": j }, netSvg);
      if (j === 0) t.setAttribute("id", "target-label");
    }
    for (let l = 0; l < L; l++) {
      const layer = [];
      for (let j = 0; j < sizes[l + 1]; j++) {
        const row = [];
        for (let i = 0; i < sizes[l]; i++) {
          const a = neurons[l][i], b = neurons[l + 1][j];
          const line = el("line", {
            x1: a.x + radius, y1: a.y, x2: b.x - radius, y2: b.y, class: "link",
            "data-link": l + "," + j + "," + i,
          }, linkGroup);
          el("title", null, line);
          row.push(line);
        }
        layer.push(row);
      }
      links.push(layer);
    }
  }

  function maxAbsWeight() {
    let m = 0;
    for (const P of data.params)
      for (const layer of P)
        for (const row of layer.W)
          for (const w of row) if (Number.isFinite(w) && Math.abs(w) > m) m = Math.abs(w);
    return m || 1;
  }
  const W_MAX = maxAbsWeight();

  function renderNetwork() {
    const { P, fw, bw } = current;
    const back = state.backward;
    // neurons' deltas on one scale, the input gradients dLoss/dx on a scale of their own
    let dMax = 0, xMax = 0;
    for (let l = 1; l <= L; l++)
      for (const d of bw.deltas[l]) if (Number.isFinite(d)) dMax = Math.max(dMax, Math.abs(d));
    for (const d of bw.deltas[0]) if (Number.isFinite(d)) xMax = Math.max(xMax, Math.abs(d));
    dMax = dMax || 1;
    xMax = xMax || 1;
    state.deltaScale = dMax;
    state.inputScale = xMax;
    for (let l = 0; l <= L; l++) {
      for (let j = 0; j < sizes[l]; j++) {
        const nd = neurons[l][j];
        const out = fw.outs[l][j], delta = bw.deltas[l][j], net = fw.nets[l][j];
        const c = nd.circle;
        c.setAttribute("data-out", g9(out));
        c.setAttribute("data-delta", g9(delta));
        c.setAttribute("data-net", g9(net));
        const shown = back ? delta : out;
        const t = back ? shade(delta, l === 0 ? xMax : dMax) : out;
        c.setAttribute("fill", diverging(t));
        c.setAttribute("data-shade", Number.isFinite(t) ? t.toFixed(4) : "NaN");
        const strong = Math.abs(t) > 0.6;
        nd.label.setAttribute("class", "neuron-value" + (strong ? " light" : ""));
        nd.label.textContent = short(shown);
        c.classList.toggle("selected", !!state.selected && state.selected[0] === l &&
          state.selected[1] === j);
        nd.tip.textContent = neuronName(l, j) + (l === 0 ? "" : "\nnet = " + g9(net)) +
          "\nout = " + g9(out) + "\n" + (l === 0 ? "dLoss/dx = " : "δ = ") + g9(delta) +
          "\n(click for the formula)";
      }
    }
    // links: forward = weight, backward = this sample's gradient delta_j * a_i
    let gMax = 0;
    if (back) {
      for (let l = 0; l < L; l++)
        for (let j = 0; j < sizes[l + 1]; j++)
          for (let i = 0; i < sizes[l]; i++) {
            const g = bw.deltas[l + 1][j] * fw.outs[l][i];
            if (Number.isFinite(g)) gMax = Math.max(gMax, Math.abs(g));
          }
      gMax = gMax || 1;
    }
    state.gradScale = gMax;
    for (let l = 0; l < L; l++) {
      const layer = P[l];
      for (let j = 0; j < sizes[l + 1]; j++) {
        for (let i = 0; i < sizes[l]; i++) {
          const line = links[l][j][i];
          const w = layer.W[j][i];
          const g = bw.deltas[l + 1][j] * fw.outs[l][i];
          const v = back ? g : w;
          const scale = back ? gMax : W_MAX;
          const width = Number.isFinite(v) ? 0.6 + 7 * Math.abs(v) / scale : 1;
          line.setAttribute("stroke", v < 0 ? "rgb(43,108,176)" : v > 0 ? "rgb(221,107,32)" : "#999");
          line.setAttribute("stroke-width", width.toFixed(2));
          line.setAttribute("stroke-opacity", back ? "0.85" : "0.75");
          line.setAttribute("data-w", g9(w));
          line.setAttribute("data-grad", g9(g));
          let tip = weightName(l, j, i) + ": " + neuronName(l, i) + " → " + neuronName(l + 1, j) + "\nw = " + g9(w) +
            "\n∂L/∂w (this sample) = δ × input = " + g9(g);
          if (layer.gW) tip += "\n∂L/∂w (whole batch) = " + g9(layer.gW[j][i]);
          line.firstChild.textContent = tip;
        }
      }
    }
    const yl = Y[state.sample];
    for (const tl of netSvg.querySelectorAll("text[data-target]")) {
      const j = Number(tl.getAttribute("data-target"));
      if (squares) tl.textContent = "t = " + g9(T[state.sample][j]);
      else if (outputKind === "sigmoid") tl.textContent = "y = " + yl;
      else tl.textContent = j === yl ? "← y = " + yl : "";
    }
    $("net-heading").textContent = back
      ? "Network — backward view: colour = δ = ∂Loss/∂net, the error sent back"
      : "Network — forward view: colour = neuron output";
    renderLegend();
  }

  function renderLegend() {
    const box = $("legend");
    box.textContent = "";
    const back = state.backward;
    const bar = h("div", { class: "legend-row" });
    const lo = back ? -state.deltaScale : -1;
    const hi = back ? state.deltaScale : 1;
    bar.appendChild(h("span", { class: "legend-label" }, back ? "neuron δ:" : "neuron output:"));
    bar.appendChild(h("span", { class: "legend-num" }, short(lo)));
    bar.appendChild(h("span", { class: "legend-bar" }));
    bar.appendChild(h("span", { class: "legend-num" }, short(hi)));
    if (back) bar.appendChild(h("span", { class: "legend-note", id: "delta-scale-note" }, state.log
      ? "(log scale: full colour at the largest |δ|, white below it / 10^" + DECADES + ")"
      : "(scaled to the largest |δ| shown)"));
    box.appendChild(bar);
    if (back) {
      const ib = h("div", { class: "legend-row", id: "input-scale" });
      ib.appendChild(h("span", { class: "legend-label" }, "input ∂L/∂x:"));
      ib.appendChild(h("span", { class: "legend-num" }, short(-state.inputScale)));
      ib.appendChild(h("span", { class: "legend-bar" }));
      ib.appendChild(h("span", { class: "legend-num" }, short(state.inputScale)));
      ib.appendChild(h("span", { class: "legend-note" }, "(a scale of its own: the inputs are not neurons)"));
      box.appendChild(ib);
    }
    const row = h("div", { class: "legend-row" });
    row.appendChild(h("span", { class: "legend-label" }, back ? "link ∂L/∂w:" : "link weight:"));
    row.appendChild(h("span", { class: "swatch pos" }));
    row.appendChild(h("span", null, "positive"));
    row.appendChild(h("span", { class: "swatch neg" }));
    row.appendChild(h("span", null, "negative"));
    row.appendChild(h("span", { class: "legend-note" },
      back ? "width = |δⱼ × inputᵢ| for this sample" : "width = |w|"));
    box.appendChild(row);
  }

  // ---------------------------------------------------------------- details panel
  function selectNeuron(l, j) {
    state.selected = [l, j];
    render();
    const panel = $("details");
    if (panel.scrollIntoView) panel.scrollIntoView({ block: "nearest" });
  }

  function num(x) {
    return h("span", { class: "num" }, g9(x));
  }

  function paren(x) {
    const s = g9(x);
    return x < 0 || Object.is(x, -0) ? "(" + s + ")" : s;
  }

  function line(parent, parts, cls) {
    const p = h("div", { class: "eq" + (cls ? " " + cls : "") });
    for (const part of parts) {
      if (typeof part === "string") p.appendChild(document.createTextNode(part));
      else p.appendChild(part);
    }
    parent.appendChild(p);
    return p;
  }

  function renderDetails() {
    const panel = $("details");
    panel.textContent = "";
    if (!state.selected) {
      panel.appendChild(h("h2", null, "Neuron details"));
      panel.appendChild(h("p", { class: "hint" },
        "Click a neuron in the network to see its numbers — net input, output and delta — " +
        "and how its delta is computed from the deltas of the layer after it."));
      return;
    }
    const [l, j] = state.selected;
    const { P, fw, bw } = current;
    const out = fw.outs[l][j], net = fw.nets[l][j], delta = bw.deltas[l][j];
    const yl = Y[state.sample];
    panel.appendChild(h("h2", null, "Neuron " + neuronName(l, j) + " — " + layerName(l) +
      " layer, neuron " + (j + 1) + " of " + sizes[l] + " (step " + steps[state.step] + ", sample #" +
      state.sample + ")"));
    const facts = h("div", { class: "facts" });
    panel.appendChild(facts);
    const f = (k, v) => {
      const d = h("div", { class: "fact" });
      d.appendChild(h("span", { class: "fact-k" }, k));
      d.appendChild(num(v));
      facts.appendChild(d);
    };
    if (l > 0) f("net", net);
    f(l === 0 ? "input value" : "out", out);
    f(l === 0 ? "∂Loss/∂x" : "δ = ∂Loss/∂net (this sample's own loss)", delta);

    const work = h("div", { class: "work" });
    panel.appendChild(work);
    // the net input and the output
    if (l > 0) {
      const W = P[l - 1].W, b = P[l - 1].b;
      const a = fw.outs[l - 1];
      work.appendChild(h("h3", null, "Forward: net input and output"));
      line(work, ["net = Σᵢ wᵢ · aᵢ + b"]);
      const terms = a.map((ai, i) => paren(W[j][i]) + " · " + paren(ai)).join(" + ");
      line(work, ["    = " + terms + " + " + paren(b[j])]);
      line(work, ["    = ", num(net)]);
      if (l < L) line(work, ["out = " + hiddenAct + "(net) = " + hiddenAct + "(" + g9(net) + ") = ", num(out)]);
      else if (outputKind === "sigmoid" || squares) line(work, ["out = σ(net) = 1 / (1 + e^(−net)) = ", num(out)]);
      else line(work, ["out = softmax(net)ⱼ = e^(netⱼ) / Σₖ e^(netₖ) = ", num(out)]);
    }
    work.appendChild(h("h3", null, l === 0 ? "Backward: the gradient reaching the input" :
      "Backward: the delta (error signal)"));
    if (l === L) {
      if (squares) {
        const t = T[state.sample][j];
        const fp = out * (1 - out);
        if (outputKind === "mse") {
          line(work, ["δ = ∂E/∂out × f′(net) = 2 (out − t) / " + K + " × out (1 − out)   (mean squared error over " +
            K + " output" + (K > 1 ? "s" : "") + ")"]);
          line(work, ["  = 2 × (" + g9(out) + " − " + g9(t) + ") / " + K + " × " + g9(fp) + " = ", num(delta)]);
        } else {
          line(work, ["δ = ∂E/∂out × f′(net) = −(t − out) × out (1 − out)   (E = Σ ½ (t − out)², Mazur's)"]);
          line(work, ["  = " + paren(out - t) + " × " + g9(fp) + " = ", num(delta)]);
        }
      } else if (outputKind === "sigmoid") {
        line(work, ["δ = out − y   (sigmoid output with binary cross-entropy)"]);
        line(work, ["  = " + g9(out) + " − " + yl + " = ", num(delta)]);
      } else {
        const t = j === yl ? 1 : 0;
        line(work, ["δ = pⱼ − [y = j]   (softmax output with cross-entropy; y = " + yl + ")"]);
        line(work, ["  = " + g9(out) + " − " + t + " = ", num(delta)]);
      }
    } else {
      const W = P[l].W, dNext = bw.deltas[l + 1];
      const s = bw.back[l][j];
      const terms = dNext.map((dk, k) => paren(W[k][j]) + " · " + paren(dk)).join(" + ");
      if (l === 0) {
        line(work, ["∂Loss/∂x = Σₖ wₖ · δₖ   (over the " + dNext.length + " neurons of " +
          layerName(1) + " that x feeds)"]);
        line(work, ["        = " + terms]);
        line(work, ["        = ", num(delta)]);
      } else {
        const fp = derivative(hiddenAct, net, out);
        line(work, ["δ = f′(net) × Σₖ wₖⱼ · δₖ   (the deltas of " + layerName(l + 1) +
          ", sent back along the weights)"]);
        line(work, ["f′(net) = " + derivativeText(hiddenAct, net, out) + " = ", num(fp)]);
        line(work, ["Σₖ wₖⱼ · δₖ = " + terms + " = ", num(s)]);
        line(work, ["δ = " + g9(fp) + " × " + paren(s) + " = ", num(delta)]);
      }
    }
    // the gradients of the incoming weights
    if (l > 0) {
      const layer = P[l - 1];
      const a = fw.outs[l - 1];
      work.appendChild(h("h3", null, "Gradients of the weights into " + neuronName(l, j)));
      line(work, ["∂Loss/∂wᵢ = δ × aᵢ for this sample alone" +
        (layer.gW ? "; the last column is the recorded gradient of the whole batch's loss, " +
          "the one this step's update used" : "")]);
      const table = h("table", { class: "grads" });
      const head = h("tr");
      for (const c of ["weight", "w", "input aᵢ", "δ × aᵢ (this sample)"].concat(layer.gW ? ["batch ∂L/∂w"] : []))
        head.appendChild(h("th", null, c));
      table.appendChild(head);
      const rows = a.map((ai, i) => [weightName(l - 1, j, i), layer.W[j][i], ai, delta * ai,
        layer.gW ? layer.gW[j][i] : null]);
      rows.push(["bias", layer.b[j], 1, delta, layer.gb ? layer.gb[j] : null]);
      for (const r of rows) {
        const tr = h("tr");
        tr.appendChild(h("td", null, r[0]));
        for (let c = 1; c < 4; c++) tr.appendChild(h("td", { class: "num" }, g9(r[c])));
        if (layer.gW) tr.appendChild(h("td", { class: "num" }, r[4] === null ? "" : g9(r[4])));
        table.appendChild(tr);
      }
      work.appendChild(table);
    }
  }

  // ---------------------------------------------------------------- decision boundary
  const canvas = $("boundary");
  const ctx = canvas ? canvas.getContext("2d") : null;
  const GRID = 165; // 2 canvas pixels per grid cell
  let bounds = null;

  function computeBounds() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const r of X) {
      if (!Number.isFinite(r[0]) || !Number.isFinite(r[1])) continue;
      x0 = Math.min(x0, r[0]); x1 = Math.max(x1, r[0]);
      y0 = Math.min(y0, r[1]); y1 = Math.max(y1, r[1]);
    }
    if (!Number.isFinite(x0)) { x0 = -1; x1 = 1; y0 = -1; y1 = 1; }
    const px = (x1 - x0) * 0.08 || 1, py = (y1 - y0) * 0.08 || 1;
    return { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
  }

  function toCanvas(x, y) {
    return [((x - bounds.x0) / (bounds.x1 - bounds.x0)) * canvas.width,
      (1 - (y - bounds.y0) / (bounds.y1 - bounds.y0)) * canvas.height];
  }

  const offscreen = document.createElement("canvas");
  offscreen.width = GRID;
  offscreen.height = GRID;

  function renderBoundary() {
    if (!ctx || !bounds) return;   // (no card: not 2-D inputs, or a single pattern)
    const P = current.P;
    const C = sizes[L];
    const cls = new Int32Array(GRID * GRID);
    const conf = new Float64Array(GRID * GRID);
    const img = offscreen.getContext("2d").createImageData(GRID, GRID);
    const classRgb = CLASS.map(hexRgb);
    for (let r = 0; r < GRID; r++) {
      const y = bounds.y1 - ((r + 0.5) / GRID) * (bounds.y1 - bounds.y0);
      for (let c = 0; c < GRID; c++) {
        const x = bounds.x0 + ((c + 0.5) / GRID) * (bounds.x1 - bounds.x0);
        const o = forward(P, [x, y]).outs[L];
        let k, pk;
        if (C === 1) {
          k = o[0] > 0.5 ? 1 : 0;
          pk = k ? o[0] : 1 - o[0];
        } else {
          k = 0;
          for (let m = 1; m < C; m++) if (o[m] > o[k]) k = m;
          pk = o[k];
        }
        const idx = r * GRID + c;
        cls[idx] = k;
        conf[idx] = Number.isFinite(pk) ? pk : 0;
      }
    }
    const base = C === 1 ? 0.5 : 1 / C;
    for (let r = 0; r < GRID; r++) {
      for (let c = 0; c < GRID; c++) {
        const idx = r * GRID + c;
        const k = cls[idx];
        const edge = (c + 1 < GRID && cls[idx + 1] !== k) || (r + 1 < GRID && cls[idx + GRID] !== k);
        const u = 0.12 + 0.45 * Math.max(0, Math.min(1, (conf[idx] - base) / (1 - base)));
        const rgb = classRgb[k % classRgb.length];
        const o = idx * 4;
        if (edge) {
          img.data[o] = 60; img.data[o + 1] = 60; img.data[o + 2] = 60;
        } else {
          for (let q = 0; q < 3; q++) img.data[o + q] = Math.round(255 + (rgb[q] - 255) * u);
        }
        img.data[o + 3] = 255;
      }
    }
    offscreen.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(offscreen, 0, 0, canvas.width, canvas.height);
    // the data points on top
    for (let n = 0; n < X.length; n++) {
      const [px, py] = toCanvas(X[n][0], X[n][1]);
      ctx.beginPath();
      ctx.arc(px, py, 3.6, 0, 2 * Math.PI);
      ctx.fillStyle = CLASS[Y[n] % CLASS.length];
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
    const s = X[state.sample];
    const [sx, sy] = toCanvas(s[0], s[1]);
    ctx.beginPath();
    ctx.arc(sx, sy, 7.5, 0, 2 * Math.PI);
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#111111";
    ctx.stroke();
  }

  function setupBoundary() {
    const card = $("boundary-card");
    if (sizes[0] !== 2 || !ctx || X.length < 2) {   // one pattern (Mazur's) has no boundary to draw
      if (card) card.classList.add("hidden");
      return;
    }
    bounds = computeBounds();
    canvas.addEventListener("click", (ev) => {
      const rect = canvas.getBoundingClientRect();
      const cx = ((ev.clientX - rect.left) / rect.width) * canvas.width;
      const cy = ((ev.clientY - rect.top) / rect.height) * canvas.height;
      let best = 0, bestD = Infinity;
      for (let n = 0; n < X.length; n++) {
        const [px, py] = toCanvas(X[n][0], X[n][1]);
        const d = (px - cx) ** 2 + (py - cy) ** 2;
        if (d < bestD) { bestD = d; best = n; }
      }
      setSample(best);
    });
    const legend = $("boundary-legend");
    const classes = sizes[L] === 1 ? 2 : sizes[L];
    for (let k = 0; k < classes; k++) {
      const item = h("span", { class: "class-item" });
      const sw = h("span", { class: "swatch" });
      sw.style.background = CLASS[k % CLASS.length];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(className(k)));
      legend.appendChild(item);
    }
  }

  // ---------------------------------------------------------------- loss curve
  const lossSvg = $("loss");
  const LW = 340, LH = 170, LM = { l: 52, r: 12, t: 12, b: 30 };
  let lossScale = null;
  let lossMarker = null, lossRule = null;

  function buildLoss() {
    lossSvg.setAttribute("viewBox", "0 0 " + LW + " " + LH);
    const finite = losses.filter(Number.isFinite);
    let lo = finite.length ? Math.min(...finite) : 0;
    let hi = finite.length ? Math.max(...finite) : 1;
    if (hi === lo) { hi += 0.5; lo -= 0.5; }
    if (lo > 0 && lo < hi * 0.2) lo = 0; // start the axis at zero when that costs little
    const s0 = steps[0], s1 = steps[steps.length - 1] === s0 ? s0 + 1 : steps[steps.length - 1];
    const sx = (s) => LM.l + ((s - s0) / (s1 - s0)) * (LW - LM.l - LM.r);
    const sy = (v) => LM.t + (1 - (v - lo) / (hi - lo)) * (LH - LM.t - LM.b);
    lossScale = { sx, sy, lo, hi };
    el("line", { x1: LM.l, y1: LH - LM.b, x2: LW - LM.r, y2: LH - LM.b, class: "axis" }, lossSvg);
    el("line", { x1: LM.l, y1: LM.t, x2: LM.l, y2: LH - LM.b, class: "axis" }, lossSvg);
    for (const v of [lo, (lo + hi) / 2, hi]) {
      const t = el("text", { x: LM.l - 5, y: sy(v) + 4, class: "tick ytick" }, lossSvg);
      t.textContent = short(v);
      el("line", { x1: LM.l, y1: sy(v), x2: LW - LM.r, y2: sy(v), class: "grid" }, lossSvg);
    }
    for (const s of [s0, steps[steps.length - 1]]) {
      const t = el("text", { x: sx(s), y: LH - LM.b + 16, class: "tick" }, lossSvg);
      t.textContent = String(s);
    }
    const lab = el("text", { x: (LM.l + LW - LM.r) / 2, y: LH - 3, class: "axis-label" }, lossSvg);
    lab.textContent = "training step";
    // polylines, broken where the loss is not finite
    let pts = [];
    const flush = () => {
      if (pts.length) el("polyline", { points: pts.join(" "), class: "loss-line" }, lossSvg);
      pts = [];
    };
    for (let k = 0; k < steps.length; k++) {
      if (Number.isFinite(losses[k])) pts.push(sx(steps[k]).toFixed(2) + "," + sy(losses[k]).toFixed(2));
      else flush();
    }
    flush();
    lossRule = el("line", { y1: LM.t, y2: LH - LM.b, class: "loss-rule" }, lossSvg);
    lossMarker = el("circle", { r: 4.5, class: "loss-marker", id: "loss-marker" }, lossSvg);
    const pick = (ev) => {
      const rect = lossSvg.getBoundingClientRect();
      const x = ((ev.clientX - rect.left) / rect.width) * LW;
      let best = 0, bestD = Infinity;
      for (let k = 0; k < steps.length; k++) {
        const d = Math.abs(sx(steps[k]) - x);
        if (d < bestD) { bestD = d; best = k; }
      }
      setStep(best);
    };
    lossSvg.addEventListener("click", pick);
  }

  function renderLoss() {
    const k = state.step;
    const x = lossScale.sx(steps[k]);
    const v = losses[k];
    const y = Number.isFinite(v) ? lossScale.sy(Math.min(Math.max(v, lossScale.lo), lossScale.hi)) : LM.t;
    lossMarker.setAttribute("cx", x);
    lossMarker.setAttribute("cy", y);
    lossRule.setAttribute("x1", x);
    lossRule.setAttribute("x2", x);
    $("loss-value").textContent = "loss at step " + steps[k] + ": " + g9(v);
  }

  // ---------------------------------------------------------------- depth view
  // mean |δ| per layer (over the first 256 samples, each a batch of one, and the layer's
  // neurons) at every recorded step: where the error signal shrinks or grows on its way back
  const DEPTH_SAMPLES = Math.min(X.length, 256);
  const LAYER_COLOURS = ["#718096", "#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#b7791f",
    "#319795", "#d53f8c", "#4a5568"];
  const depthSvg = $("depth");
  const DW = 340, DH = 190, DM = { l: 44, r: 12, t: 16, b: 30 };
  let depth = null; // depth[k][l]
  let depthScale = null, depthRule = null;

  function depthNorms() {
    const out = [];
    for (let k = 0; k < steps.length; k++) {
      const P = data.params[k];
      const acc = new Array(L + 1).fill(0);
      for (let n = 0; n < DEPTH_SAMPLES; n++) {
        const bw = backward(P, forward(P, X[n]), targetOf(n));
        for (let l = 0; l <= L; l++) {
          let s = 0;
          for (const d of bw.deltas[l]) s += Math.abs(d);
          acc[l] += s / bw.deltas[l].length;
        }
      }
      out.push(acc.map((v) => v / DEPTH_SAMPLES));
    }
    return out;
  }

  function layerLabel(l) {
    return l === 0 ? "input ∂L/∂x" : layerName(l);
  }

  function buildDepth() {
    depth = depthNorms();
    depthSvg.setAttribute("viewBox", "0 0 " + DW + " " + DH);
    const pos = [];
    for (const row of depth) for (const v of row) if (Number.isFinite(v) && v > 0) pos.push(v);
    let lo = pos.length ? Math.log10(Math.min(...pos)) : -3;
    let hi = pos.length ? Math.log10(Math.max(...pos)) : 0;
    lo = Math.floor(lo); hi = Math.ceil(hi);
    if (hi <= lo) hi = lo + 1;
    const s0 = steps[0], s1 = steps[steps.length - 1] === s0 ? s0 + 1 : steps[steps.length - 1];
    const sx = (s) => DM.l + ((s - s0) / (s1 - s0)) * (DW - DM.l - DM.r);
    const sy = (v) => DM.t + (1 - (Math.log10(v) - lo) / (hi - lo)) * (DH - DM.t - DM.b);
    depthScale = { sx, sy };
    el("line", { x1: DM.l, y1: DH - DM.b, x2: DW - DM.r, y2: DH - DM.b, class: "axis" }, depthSvg);
    el("line", { x1: DM.l, y1: DM.t, x2: DM.l, y2: DH - DM.b, class: "axis" }, depthSvg);
    const every = Math.max(1, Math.ceil((hi - lo) / 5));
    for (let e = lo; e <= hi; e += every) {
      const t = el("text", { x: DM.l - 5, y: sy(10 ** e) + 4, class: "tick ytick" }, depthSvg);
      t.textContent = "1e" + e;
      if (e === hi) {
        const yl = el("text", { x: DM.l + 4, y: DM.t - 2, class: "tick", "text-anchor": "start" }, depthSvg);
        yl.textContent = "mean |δ| per sample (log scale)";
        yl.style.textAnchor = "start";
      }
      el("line", { x1: DM.l, y1: sy(10 ** e), x2: DW - DM.r, y2: sy(10 ** e), class: "grid" }, depthSvg);
    }
    for (const s of [s0, steps[steps.length - 1]]) {
      const t = el("text", { x: sx(s), y: DH - DM.b + 16, class: "tick" }, depthSvg);
      t.textContent = String(s);
    }
    const lab = el("text", { x: (DM.l + DW - DM.r) / 2, y: DH - 3, class: "axis-label" }, depthSvg);
    lab.textContent = "training step";
    const legend = $("depth-legend");
    for (let l = L; l >= 0; l--) {
      const pts = [];
      for (let k = 0; k < steps.length; k++) {
        const v = depth[k][l];
        if (Number.isFinite(v) && v > 0) pts.push(sx(steps[k]).toFixed(2) + "," + sy(v).toFixed(2));
      }
      const colour = LAYER_COLOURS[l % LAYER_COLOURS.length];
      el("polyline", { points: pts.join(" "), class: "depth-line" + (l === 0 ? " input" : ""),
        stroke: colour, "data-depth-layer": String(l) }, depthSvg);
      const item = h("span", { class: "class-item" });
      const sw = h("span", { class: "swatch" });
      sw.style.background = colour;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(layerLabel(l)));
      legend.appendChild(item);
    }
    depthRule = el("line", { y1: DM.t, y2: DH - DM.b, class: "loss-rule" }, depthSvg);
    depthSvg.addEventListener("click", (ev) => {
      const rect = depthSvg.getBoundingClientRect();
      const x = ((ev.clientX - rect.left) / rect.width) * DW;
      let best = 0, bestD = Infinity;
      for (let k = 0; k < steps.length; k++) {
        const d = Math.abs(sx(steps[k]) - x);
        if (d < bestD) { bestD = d; best = k; }
      }
      setStep(best);
    });
  }

  function times(v) {
    return v >= 100 ? String(Math.round(v)) : v.toPrecision(3);
  }

  // the largest f'(net) of each activation: what one layer can multiply the error signal by
  const FPRIME_MAX = { sigmoid: "0.25", tanh: "1", relu: "1", leaky_relu: "1", gelu: "1.13" };
  const RELU_LIKE = hiddenAct === "relu" || hiddenAct === "leaky_relu" || hiddenAct === "gelu";
  const LR_LESSON = data.lesson_kind === "lr_too_large" || data.lesson_kind === "diverged";

  function depthDiagnosis(row) {
    // one sentence when mean |δ| changes by more than 100x from the output layer to the first,
    // with the cause and the advice that fit this network (lessons.py says the same in Python)
    if (L < 2) return "";
    const first = row[1], last = row[L];
    if (!(first > 0) || !(last > 0)) return "";
    const change = first / last;
    if (LR_LESSON && (change < 0.01 || change > 100)) {
      return "Mean |δ| changes " + times(change < 1 ? 1 / change : change) + "× from the output layer to the first " +
        "hidden layer: a symptom of the learning rate too large (see the note at the top), whose steps left " +
        "the weights large, not of the choice of activation.";
    }
    if (change < 0.01) {
      const bound = FPRIME_MAX[hiddenAct] || "1";
      const cause = hiddenAct === "sigmoid"
        ? "the sigmoid activation: its f′(net) is at most 0.25 and multiplies the error signal once per " +
          "hidden layer, " + (L - 1) + " time" + (L > 2 ? "s" : "")
        : hiddenAct === "tanh"
          ? "saturated tanh units: tanh's f′(net) is at most 1 but near 0 where |net| is large"
          : "the initialisation and the depth (" + L + " layers; " + hiddenAct + "'s f′(net) is at most " + bound + ")";
      const advice = RELU_LIKE
        ? "the network already uses " + hiddenAct + ": try He (kaiming) initialisation, fewer layers, or batch " +
          "normalisation."
        : "try ReLU or leaky ReLU hidden units with He initialisation, fewer layers, or batch normalisation.";
      return "Vanishing gradients: mean |δ| falls " + times(1 / change) + "× from the output layer to " +
        "the first hidden layer, most likely from " + cause + "; " + advice;
    }
    if (change > 100) {
      return "Exploding gradients: mean |δ| grows " + times(change) + "× from the output layer to the " +
        "first hidden layer, most likely from large weights; try smaller initial weights, a lower " +
        "learning rate, or gradient clipping.";
    }
    return "";
  }

  function renderDepth() {
    const k = state.step;
    const x = depthScale.sx(steps[k]);
    depthRule.setAttribute("x1", x);
    depthRule.setAttribute("x2", x);
    const row = depth[k];
    const parts = [];
    for (let l = L; l >= 1; l--) {
      const ratio = l < L && row[l + 1] > 0 ? "  (×" + (row[l] / row[l + 1]).toPrecision(3) + ")" : "";
      parts.push(layerName(l) + " " + short(row[l]) + ratio);
    }
    parts.push("input ∂L/∂x " + short(row[0]));
    const note = $("depth-note");
    note.textContent = "";
    note.appendChild(h("span", null, "At step " + steps[k] + ", mean |δ|: " + parts.join(" · ") + "."));
    const d = depthDiagnosis(row);
    if (d) note.appendChild(h("span", { class: "diagnosis", id: "depth-diagnosis" }, " " + d));
  }

  function plateauHint() {
    // the loss has stopped falling: over the last quarter of the recorded steps it changed by
    // less than 1% while still above a tenth of where it started
    const n = losses.length;
    if (n < 8) return "";
    const q = Math.max(2, Math.floor(n / 4));
    const tail = losses.slice(n - q).filter(Number.isFinite);
    if (tail.length < 2 || !Number.isFinite(losses[0])) return "";
    const hi = Math.max(...tail), lo = Math.min(...tail);
    if (hi - lo > 0.01 * Math.abs(hi) || lo < 0.1 * Math.abs(losses[0])) return "";
    const d = depthDiagnosis(depth[depth.length - 1]);
    return "The loss has stopped falling: it changed by less than 1% over the last " + q + " recorded steps " +
      "(" + short(lo) + " to " + short(hi) + "). " + (d ? d + " The depth view shows where the error signal fades."
        : "Try a larger learning rate, more hidden units, or another activation; the depth view shows how " +
          "much error signal reaches each layer.");
  }

  // ---------------------------------------------------------------- controls
  function sampleText(n) {
    const xs = X[n].slice(0, 4).map(short).join(", ") + (X[n].length > 4 ? ", …" : "");
    if (squares) return "#" + n + "  x = (" + xs + ")  t = (" + T[n].map((v) => g9(v)).join(", ") + ")";
    return "#" + n + "  x = (" + xs + ")  y = " + Y[n] + (data.class_names ? " (" + data.class_names[Y[n]] + ")" : "");
  }

  function className(k) {  // a user's own labels when the data came from their file
    return data.class_names ? data.class_names[k] : "class " + k;
  }

  function setupControls() {
    stepInput.min = "0";
    stepInput.max = String(steps.length - 1);
    stepInput.step = "1";
    stepInput.value = String(state.step);
    const onStep = () => setStep(parseInt(stepInput.value, 10));
    stepInput.addEventListener("input", onStep);
    stepInput.addEventListener("change", onStep);
    const frag = document.createDocumentFragment();
    for (let n = 0; n < X.length; n++) frag.appendChild(h("option", { value: String(n) }, sampleText(n)));
    sampleInput.appendChild(frag);
    sampleInput.value = String(state.sample);
    const onSample = () => setSample(parseInt(sampleInput.value, 10));
    sampleInput.addEventListener("input", onSample);
    sampleInput.addEventListener("change", onSample);
    backInput.checked = state.backward;
    backInput.addEventListener("change", () => {
      state.backward = backInput.checked;
      render();
    });
    const logInput = $("logscale");
    logInput.checked = state.log;
    logInput.addEventListener("change", () => {
      state.log = logInput.checked;
      render();
    });
    const play = $("play");
    play.addEventListener("click", () => {
      if (state.playing) {
        stopPlaying();
        return;
      }
      if (state.step >= steps.length - 1) setStep(0);
      play.textContent = "❚❚ Pause";
      state.playing = setInterval(() => {
        if (state.step >= steps.length - 1) stopPlaying();
        else setStep(state.step + 1);
      }, Math.max(20, Math.min(120, 6000 / steps.length)));
    });
  }

  function stopPlaying() {
    clearInterval(state.playing);
    state.playing = null;
    $("play").textContent = "▶ Play";
  }

  function setStep(k) {
    if (!Number.isInteger(k) || k < 0 || k >= steps.length) return;
    state.step = k;
    if (stepInput.value !== String(k)) stepInput.value = String(k);
    render();
  }

  function setSample(n) {
    if (!Number.isInteger(n) || n < 0 || n >= X.length) return;
    state.sample = n;
    if (sampleInput.value !== String(n)) sampleInput.value = String(n);
    render();
  }

  let lastBoundaryStep = -1;
  let lastBoundarySample = -1;

  function render() {
    const P = data.params[state.step];
    const fw = forward(P, X[state.sample]);
    const bw = backward(P, fw, targetOf(state.sample));
    current = { P, fw, bw };
    $("step-label").textContent = "step " + steps[state.step] + "  (" + (state.step + 1) + " of " +
      steps.length + ")";
    renderNetwork();
    renderDetails();
    renderLoss();
    renderDepth();
    if (lastBoundaryStep !== state.step || lastBoundarySample !== state.sample) {
      renderBoundary();
      lastBoundaryStep = state.step;
      lastBoundarySample = state.sample;
    }
    document.body.setAttribute("data-step", String(steps[state.step]));
    document.body.setAttribute("data-sample", String(state.sample));
    document.body.setAttribute("data-view", state.backward ? "backward" : "forward");
    document.body.setAttribute("data-scale", state.log ? "log" : "linear");
  }

  buildNetwork();
  buildLoss();
  buildDepth();
  setupBoundary();
  setupControls();
  const hint = data.lesson || L < 2 ? "" : plateauHint();   // the run's lesson, when there is one, says why
  if (hint) {
    $("plateau-hint").textContent = hint;
    $("plateau-hint").hidden = false;
  }
  render();
  window.deltapropReport = { formatG, g9, forward, backward, state, data, setStep, setSample, render,
    depth: () => depth, targetOf };
  document.body.setAttribute("data-ready", "true");
})();
