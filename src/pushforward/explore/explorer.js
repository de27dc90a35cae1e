// pushforward explore: draws a run's training snapshots on canvases, one frame at a time.
// Everything it needs is in the page (the #data JSON); nothing is fetched.
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const cache = new Map();

function arr(e) {
  // a tensor of the page: {t: f4|i4|u1, s: shape, b: base64 bytes}
  if (!e) return null;
  if (cache.has(e)) return cache.get(e);
  const bin = atob(e.b), u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  const a = e.t === "f4" ? new Float32Array(u.buffer) : e.t === "i4" ? new Int32Array(u.buffer) : u;
  cache.set(e, a);
  return a;
}

// ---------------------------------------------------------------- colours
const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
const DENSITY = [[255, 255, 255], [199, 221, 238], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
const CRITIC = [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]];
function ramp(stops, t) {
  t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}
function hue(x, y) {
  // a colour for a point of the base space: its angle sets the hue, its radius the lightness
  const h = (Math.atan2(y, x) / (2 * Math.PI) + 1) % 1, r = Math.min(1, Math.hypot(x, y) / 3);
  return `hsl(${Math.round(h * 360)},75%,${Math.round(25 + 40 * r)}%)`;
}
const classColour = (c) => (c < 0 ? "#333" : TAB10[c % 10]);

// ---------------------------------------------------------------- drawing
const SIZE = 340;
function view(extent) {
  const [x0, x1, y0, y1] = extent;
  return { x: (x) => ((x - x0) / (x1 - x0)) * SIZE, y: (y) => ((y1 - y) / (y1 - y0)) * SIZE,
    inv: (px, py) => [x0 + (px / SIZE) * (x1 - x0), y1 - (py / SIZE) * (y1 - y0)] };
}
function map(ctx, values, res, stops, lo, hi) {
  // a res x res map (rows from the top) stretched over the canvas
  const img = new ImageData(res, res);
  for (let i = 0; i < res * res; i++) {
    const c = ramp(stops, (values[i] - lo) / (hi - lo || 1));
    img.data.set([c[0], c[1], c[2], 255], 4 * i);
  }
  const off = document.createElement("canvas");
  off.width = off.height = res;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, SIZE, SIZE);
}
function densityMap(ctx, logd, res) {
  // exp(log density) scaled to its maximum, square-rooted so that thin mass still shows
  let m = -Infinity;
  for (const v of logd) m = Math.max(m, v);
  map(ctx, logd.map((v) => Math.sqrt(Math.exp(v - m))), res, DENSITY, 0, 1);
}
function points(ctx, v, xy, colour, r = 1.6) {
  for (let i = 0; i < xy.length / 2; i++) {
    ctx.fillStyle = typeof colour === "function" ? colour(i) : colour;
    ctx.fillRect(v.x(xy[2 * i]) - r, v.y(xy[2 * i + 1]) - r, 2 * r, 2 * r);
  }
}
function lines(ctx, v, xy, n, per, style) {
  ctx.strokeStyle = style;
  ctx.lineWidth = 0.7;
  for (let l = 0; l < n; l++) {
    ctx.beginPath();
    for (let p = 0; p < per; p++) {
      const k = 2 * (l * per + p);
      p ? ctx.lineTo(v.x(xy[k]), v.y(xy[k + 1])) : ctx.moveTo(v.x(xy[k]), v.y(xy[k + 1]));
    }
    ctx.stroke();
  }
}
function holes(ctx, h, res) {
  ctx.fillStyle = "rgba(220,0,0,0.45)";
  const s = SIZE / res;
  for (let i = 0; i < res * res; i++) if (h[i]) ctx.fillRect((i % res) * s, Math.floor(i / res) * s, s, s);
}
function ellipse(ctx, v, mean, cov, k, width) {
  // the k-sigma ellipse of a 2-D Gaussian, from the eigen-decomposition of its covariance
  const [a, b, c] = [cov[0], cov[1], cov[3]], tr = (a + c) / 2, det = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const l1 = tr + det, l2 = Math.max(tr - det, 0), ang = Math.atan2(l1 - a, b || 1e-12);
  ctx.beginPath();
  for (let t = 0; t <= 64; t++) {
    const u = (2 * Math.PI * t) / 64, ex = k * Math.sqrt(l1) * Math.cos(u), ey = k * Math.sqrt(l2) * Math.sin(u);
    const x = mean[0] + ex * Math.cos(ang) - ey * Math.sin(ang), y = mean[1] + ex * Math.sin(ang) + ey * Math.cos(ang);
    t ? ctx.lineTo(v.x(x), v.y(y)) : ctx.moveTo(v.x(x), v.y(y));
  }
  ctx.lineWidth = width;
  ctx.stroke();
}
function images(canvas, u8, shape, cols, pick) {
  // images [n, C, H, W] in a grid of ``cols`` columns, or only the indices in ``pick``
  const [n, c, h, w] = shape, idx = pick || [...Array(n).keys()], rows = Math.ceil(idx.length / cols);
  const img = new ImageData(cols * (w + 1) + 1, rows * (h + 1) + 1);
  img.data.fill(255);
  idx.forEach((j, q) => {
    const ox = 1 + (q % cols) * (w + 1), oy = 1 + Math.floor(q / cols) * (h + 1);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = 4 * ((oy + y) * img.width + ox + x);
      for (let k = 0; k < 3; k++) img.data[o + k] = u8[((j * c + (c === 3 ? k : 0)) * h + y) * w + x];
    }
  });
  const off = document.createElement("canvas");
  off.width = img.width; off.height = img.height;
  off.getContext("2d").putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const s = Math.min(canvas.width / img.width, canvas.height / img.height);
  ctx.drawImage(off, 0, 0, img.width * s, img.height * s);
}

// ---------------------------------------------------------------- the panels
const panels = document.getElementById("panels");
function panel(title, caption, legend) {
  const fig = document.createElement("figure"), c = document.createElement("canvas");
  c.width = c.height = SIZE;
  c.id = "panel-" + panels.children.length;
  const h = document.createElement("h3");
  h.textContent = title;
  fig.append(h, c);
  if (legend) {
    const l = document.createElement("div");
    l.className = "legend";
    const g = legend[0].map((s) => `rgb(${s})`).join(",");
    l.innerHTML = `<span>${legend[1]}</span><i style="background:linear-gradient(90deg,${g})"></i><span>${legend[2]}</span>`;
    fig.append(l);
  }
  const p = document.createElement("figcaption");
  p.textContent = caption;
  fig.append(p);
  panels.append(fig);
  return c.getContext("2d");
}
const I = D.inputs, info = D.info, Z = info.z_extent, zview = view([-Z, Z, -Z, Z]);
const dview = info.extent ? view(info.extent) : zview;
const frame = (i) => D.frames[i];
const draw = [];
let cur = 0;

// the layers a model's panels are made of (models/drawing.py); each names tensors of the
// frame or of the fixed inputs
function tensor(f, name) {
  const e = f[name] || I[name];
  return e ? { a: arr(e), s: e.s } : null;
}
function xy(t) {
  // the first two coordinates of [..., k] as a flat [n * 2]
  const k = t.s[t.s.length - 1];
  if (k === 2) return t.a;
  const out = new Float32Array((t.a.length / k) * 2);
  for (let i = 0; i < out.length / 2; i++) { out[2 * i] = t.a[i * k]; out[2 * i + 1] = t.a[i * k + 1]; }
  return out;
}
function colourOf(spec, f, alpha) {
  if (typeof spec === "string") {
    const n = parseInt(spec.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
  }
  if (spec.hue) { const p = xy(tensor(f, spec.hue)); return (i) => hue(p[2 * i], p[2 * i + 1]); }
  const c = tensor(f, spec.class).a;
  return (i) => classColour(c[i]);
}
const LAYERS = {
  density: (ctx, v, L, f) => { const t = tensor(f, L.of); if (t) densityMap(ctx, t.a, t.s[0]); },
  critic: (ctx, v, L, f) => {
    const t = tensor(f, L.of), d = t.a;
    if (L.scale === "sigmoid") map(ctx, d.map((x) => 1 / (1 + Math.exp(-x))), t.s[0], CRITIC, 0, 1);
    else { let m = 1e-9; for (const x of d) m = Math.max(m, Math.abs(x)); map(ctx, d, t.s[0], CRITIC, -m, m); }
  },
  holes: (ctx, v, L, f) => { const t = tensor(f, L.of); holes(ctx, t.a, t.s[0]); },
  lines: (ctx, v, L, f) => { const t = tensor(f, L.of); lines(ctx, v, xy(t), t.s[0], t.s[1], "rgba(0,0,0,0.3)"); },
  points: (ctx, v, L, f) => points(ctx, v, tensor(f, L.of).a, colourOf(L.colour, f, L.alpha), L.size),
  ellipses: (ctx, v, L, f) => {
    const w = tensor(f, L.weights).a, mu = tensor(f, L.means).a, cov = tensor(f, L.covariances).a;
    let wm = 0; for (const x of w) wm = Math.max(wm, x);
    for (let k = 0; k < w.length; k++) {
      ctx.strokeStyle = TAB10[k % 10];
      for (const s of [1, 2]) ellipse(ctx, v, mu.subarray(2 * k, 2 * k + 2), cov.subarray(4 * k, 4 * k + 4), s, 0.6 + 2.4 * (w[k] / wm));
    }
  },
  images: (ctx, v, L, f) => { const t = tensor(f, L.of); images(ctx.canvas, t.a, t.s, L.columns || 8); },
};

function decoder(ctx, L) {
  // hover a "z" panel to see the image decoded there, click two points for the path between
  const dec = document.getElementById("decoded"), path = document.getElementById("path");
  document.getElementById("latent-tools").hidden = false;
  let clicks = [], hover = null;
  const images_ = () => tensor(frame(cur), L.of), side = () => Math.round(Math.sqrt(images_().s[0]));
  const cell = ([zx, zy]) => {
    const n = side(), s = (2 * Z) / n, col = Math.min(n - 1, Math.max(0, Math.floor((zx + Z) / s)));
    return Math.min(n - 1, Math.max(0, Math.floor((Z - zy) / s))) * n + col;
  };
  const decode = () => {
    const li = images_();
    if (hover) images(dec, li.a, li.s, 1, [cell(hover)]);
    if (clicks.length === 2) {
      const [a, b] = clicks, idx = [];
      for (let t = 0; t < 10; t++) idx.push(cell([a[0] + ((b[0] - a[0]) * t) / 9, a[1] + ((b[1] - a[1]) * t) / 9]));
      images(path, li.a, li.s, 10, idx);
    }
  };
  const at = (e) => { const r = ctx.canvas.getBoundingClientRect(); return zview.inv(((e.clientX - r.left) / r.width) * SIZE, ((e.clientY - r.top) / r.height) * SIZE); };
  ctx.canvas.addEventListener("mousemove", (e) => { hover = at(e); decode(); document.getElementById("zpos").textContent = `z = (${hover[0].toFixed(2)}, ${hover[1].toFixed(2)})`; });
  ctx.canvas.addEventListener("click", (e) => { clicks = clicks.length === 2 ? [at(e)] : [...clicks, at(e)]; render(cur); });
  return () => {
    ctx.fillStyle = "#000";
    for (const c of clicks) ctx.fillRect(zview.x(c[0]) - 4, zview.y(c[1]) - 4, 8, 8);
    if (clicks.length === 2) { ctx.beginPath(); ctx.moveTo(zview.x(clicks[0][0]), zview.y(clicks[0][1])); ctx.lineTo(zview.x(clicks[1][0]), zview.y(clicks[1][1])); ctx.stroke(); }
    decode();
  };
}

const RAMPS = { density: DENSITY, critic: CRITIC };
for (const p of D.panels) {
  const ctx = panel(p.title, p.caption, p.legend && [RAMPS[p.legend[0]], p.legend[1], p.legend[2]]);
  const v = p.space === "z" ? zview : dview;
  const tools = p.layers.filter((L) => L.draw === "decoder").map((L) => decoder(ctx, L));
  draw.push((f) => {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, SIZE, SIZE);
    for (const L of p.layers) if (LAYERS[L.draw]) LAYERS[L.draw](ctx, v, L, f);
    tools.forEach((t) => t());
  });
}

// ---------------------------------------------------------------- the loss curve and the timeline
const curve = document.getElementById("curve").getContext("2d");
function drawCurve(step) {
  const H = D.history, W = curve.canvas.width, Hh = curve.canvas.height, pad = 36;
  curve.fillStyle = "#fff"; curve.fillRect(0, 0, W, Hh);
  const names = Object.keys(H.series);
  if (!H.step.length || !names.length) return;
  const smax = Math.max(...H.step, step, 1);
  let lo = Infinity, hi = -Infinity;
  for (const n of names) for (const v of H.series[n]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const X = (s) => pad + ((W - pad - 8) * s) / smax, Y = (v) => 8 + ((Hh - 28) * (hi - v)) / (hi - lo || 1);
  names.forEach((n, k) => {
    curve.strokeStyle = TAB10[k % 10]; curve.lineWidth = 1.2; curve.beginPath();
    H.series[n].forEach((v, i) => { if (v !== null) curve.lineTo(X(H.step[i]), Y(v)); });
    curve.stroke(); curve.fillStyle = TAB10[k % 10]; curve.fillText(n, pad + 6 + 80 * k, Hh - 4);
  });
  curve.fillStyle = "#000";
  curve.fillText(hi.toPrecision(3), 2, 14); curve.fillText(lo.toPrecision(3), 2, Hh - 20);
  curve.strokeStyle = "#c00"; curve.beginPath(); curve.moveTo(X(step), 0); curve.lineTo(X(step), Hh - 14); curve.stroke();
}
const slider = document.getElementById("timeline"), label = document.getElementById("where");
slider.max = D.frames.length - 1;
function render(i) {
  const f = frame(i);
  cur = i;
  draw.forEach((d) => d(f));
  label.textContent = `${D.unit} ${f.step.toLocaleString("en")} of ${D.frames[D.frames.length - 1].step.toLocaleString("en")} (frame ${i + 1} of ${D.frames.length}, ${f.seconds.toFixed(1)} s)`;
  drawCurve(f.step);
}
slider.addEventListener("input", () => render(+slider.value));
let timer = null;
const play = document.getElementById("play");
play.addEventListener("click", () => {
  if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
  if (+slider.value >= D.frames.length - 1) slider.value = 0;
  play.textContent = "Pause";
  timer = setInterval(() => {
    if (+slider.value >= D.frames.length - 1) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
    slider.value = +slider.value + 1; render(+slider.value);
  }, 250);
});
slider.value = 0;
render(0);
