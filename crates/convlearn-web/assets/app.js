// The page only draws: every number comes from convlearn's API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { presets: [], kernel: [], image: null, dims: null, cursor: null, seq: 0, arithSeq: 0, model: null, explored: null,
  heatSeq: 0, chosenClass: null, training: { run: 0, steps: [], epochs: [], total: 0, polling: false, follow: true } };

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// ---- kernel grid -------------------------------------------------------------------------
function buildGrid(rows) {
  const grid = $("kernel-grid");
  grid.innerHTML = "";
  const n = rows.length;
  grid.style.gridTemplateColumns = `repeat(${rows[0].length}, auto)`;
  rows.forEach((row, y) => row.forEach((v, x) => {
    const cell = document.createElement("input");
    cell.type = "number";
    cell.step = "0.1";
    cell.value = String(+v.toFixed(4));
    cell.id = `cell-${y}-${x}`;
    cell.setAttribute("aria-label", `kernel row ${y + 1} of ${n}, column ${x + 1}`);
    cell.addEventListener("input", () => { $("preset-select").value = ""; readGrid(); convolveSoon(); });
    grid.appendChild(cell);
  }));
  state.kernel = rows.map((r) => r.slice());
}

function readGrid() {
  const n = state.kernel.length, m = state.kernel[0].length;
  for (let y = 0; y < n; y++) for (let x = 0; x < m; x++) {
    const v = parseFloat($(`cell-${y}-${x}`).value);
    state.kernel[y][x] = Number.isFinite(v) ? v : 0;
  }
}

function resizeKernel(size) {
  const rows = Array.from({ length: size }, (_, y) => Array.from({ length: size }, (_, x) => {
    const off = (size - state.kernel.length) / 2;
    const r = state.kernel[y - off];
    return r && r[x - off] !== undefined ? r[x - off] : 0;
  }));
  buildGrid(rows);
}

// ---- playground ----------------------------------------------------------------------------
function request() {
  return { image: state.image, kernel: state.kernel, padding: $("padding-select").value, color: $("color-check").checked };
}

function clearArithmetic() {
  state.cursor = null;
  $("arithmetic").innerHTML = '<p class="note">Point at the response to see how one pixel is computed.</p>';
}

async function convolve() {
  if (!state.image) return;
  const seq = ++state.seq;
  try {
    const r = await api("/api/convolve", request());
    if (seq !== state.seq) return;
    $("input-img").src = r.input.png;
    $("response-img").src = r.response.png;
    $("relu-img").src = r.relu.png;
    $("pooled-img").src = r.pooled.png;
    state.dims = { width: r.response.width, height: r.response.height };
    $("response-caption").textContent = `response ${r.response.width}×${r.response.height}: ${r.response.min.toFixed(2)} … ${r.response.max.toFixed(2)} (full colour at ±${r.scale.toFixed(2)})`;
    $("padding-note").textContent = r.padding;
    hideError("upload-error");
    if (state.cursor) showArithmetic();
  } catch (e) {
    showError("upload-error", e.message);
  }
}
const convolveSoon = debounce(convolve, 120);

function fmt(v) { return (Math.abs(v) < 1e-9 ? 0 : v).toFixed(3); }

function table(caption, values, h, w) {
  let html = `<table><caption>${caption}</caption>`;
  for (let y = 0; y < h; y++) {
    html += "<tr>" + values.slice(y * w, y * w + w).map((v) => `<td>${fmt(v)}</td>`).join("") + "</tr>";
  }
  return html + "</table>";
}

async function showArithmetic() {
  const c = state.cursor;
  if (!c || !state.dims) return;
  const seq = ++state.arithSeq;
  try {
    const a = await api("/api/arithmetic", { ...request(), x: c.x, y: c.y });
    if (seq !== state.arithSeq) return;
    const names = a.channels.length === 3 ? ["R", "G", "B"] : ["gray"];
    let html = `<p class="sum"><strong>output pixel x=${a.x}, y=${a.y}</strong></p>`;
    a.channels.forEach((ch, i) => {
      html += `<div>${table(`input window (${names[i]})`, ch.window, a.kernel_height, a.kernel_width)}`
        + table("× kernel", ch.kernel, a.kernel_height, a.kernel_width)
        + table("= products", ch.products, a.kernel_height, a.kernel_width)
        + `<p class="sum">sum of products (${names[i]}) = ${fmt(ch.sum)}</p></div>`;
    });
    html += `<p class="sum">total = ${fmt(a.total)} → after ReLU max(0, total) = ${fmt(a.relu)}</p>`;
    html += `<details><summary>as printed by convlearn kernel --at</summary><pre>${escapeHtml(a.text)}</pre></details>`;
    $("arithmetic").innerHTML = html;
  } catch (e) {
    $("arithmetic").innerHTML = `<p class="error">${escapeHtml(e.message)}</p>`;
  }
}
const arithmeticSoon = debounce(showArithmetic, 40);

function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[ch]));
}

function pixelAt(img, ev, dims) {
  const rect = img.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - rect.left) / rect.width) * dims.width);
  const y = Math.floor(((ev.clientY - rect.top) / rect.height) * dims.height);
  return { x: Math.min(Math.max(x, 0), dims.width - 1), y: Math.min(Math.max(y, 0), dims.height - 1) };
}

function moveCursor(dx, dy) {
  if (!state.dims) return;
  const c = state.cursor || { x: 0, y: 0 };
  state.cursor = { x: Math.min(Math.max(c.x + dx, 0), state.dims.width - 1), y: Math.min(Math.max(c.y + dy, 0), state.dims.height - 1) };
  showArithmetic();
}

function showError(id, message) { const el = $(id); el.textContent = message; el.hidden = false; }
function hideError(id) { $(id).hidden = true; }

// ---- pictures ------------------------------------------------------------------------------
async function loadImages(select) {
  const list = await api("/api/samples");
  for (const id of ["image-select", "explore-select"]) {
    const s = $(id), keep = s.value;
    s.innerHTML = list.map((i) => `<option value="${i.id}">${escapeHtml(i.name)} (${i.width}×${i.height})</option>`).join("");
    s.value = select || keep || (list[0] && list[0].id);
  }
  return list;
}

async function upload(ev) {
  ev.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { showError("upload-error", "Choose a picture file first."); return; }
  const form = new FormData();
  form.append("image", file);
  try {
    const res = await fetch("/api/upload", { method: "POST", body: form });
    const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
    hideError("upload-error");
    await loadImages(data.id);
    state.image = data.id;
    clearArithmetic();
    convolve();
  } catch (e) {
    showError("upload-error", `Upload refused: ${e.message}`);
  }
}

// ---- explorer ------------------------------------------------------------------------------
async function pollModel() {
  const m = await api("/api/model");
  state.model = m;
  const el = $("model-status");
  if (m.status === "training") {
    el.textContent = `Training ${m.source}…`;
    setTimeout(pollModel, 1000);
  } else if (m.status === "failed") {
    el.textContent = `The model could not be prepared: ${m.error}`;
  } else {
    const acc = m.accuracy != null ? `, ${(100 * m.accuracy).toFixed(1)}% right on held-out shapes` : "";
    el.textContent = `Model: ${m.architecture} (${m.source}${acc}); classes: ${m.classes.join(", ")}.`
      + (m.explainable ? " Click any pixel of a conv layer's map to see its arithmetic." : "")
      + " Click an output bar to see where the network found that class's evidence.";
    updateSpreadsheetLink();
    explore();
  }
}

async function explore() {
  if (!state.model || state.model.status !== "ready") return;
  try {
    const r = await api("/api/explore", { image: $("explore-select").value });
    state.explored = r;
    hideError("explore-error");
    const stages = $("stages");
    stages.innerHTML = `<div class="stage"><h3>input ${r.width}×${r.height}</h3><div class="tiles"><img src="${r.input}" alt="input" style="width:144px"></div></div>`;
    r.stages.forEach((s) => {
      const div = document.createElement("div");
      div.className = "stage";
      const shown = s.tiles.length < s.channels ? `, first ${s.tiles.length} shown` : "";
      div.innerHTML = `<h3>${escapeHtml(s.name)}: ${s.channels} maps of ${s.width}×${s.height}${shown}</h3>`;
      const tiles = document.createElement("div");
      tiles.className = "tiles";
      s.tiles.forEach((png, c) => {
        const img = document.createElement("img");
        img.src = png;
        img.alt = `${s.name}, map ${c}`;
        if (s.conv_layer) {
          img.tabIndex = 0;
          img.title = "click a pixel (or press Enter) for its arithmetic";
          img.addEventListener("click", (ev) => explain(s, c, pixelAt(img, ev, s)));
          img.addEventListener("keydown", (ev) => { if (ev.key === "Enter") explain(s, c, { x: s.width >> 1, y: s.height >> 1 }); });
        }
        tiles.appendChild(img);
      });
      div.appendChild(tiles);
      stages.appendChild(div);
    });
    drawOutputs();
    const known = r.outputs.some((o) => o.class === state.chosenClass);
    showHeatmap(known ? state.chosenClass : null);
  } catch (e) {
    showError("explore-error", e.message);
  }
}

function updateSpreadsheetLink() {
  const a = $("spreadsheet-link");
  const m = state.model;
  a.hidden = !(m && m.status === "ready" && m.spreadsheet);
  a.href = `/api/spreadsheet?image=${encodeURIComponent($("explore-select").value)}`;
}

// Grad-CAM for `cls` (the most probable class when null) on the explorer's picture.
async function showHeatmap(cls) {
  const seq = ++state.heatSeq;
  try {
    const h = await api("/api/heatmap", { image: $("explore-select").value, class: cls });
    if (seq !== state.heatSeq) return;
    state.chosenClass = h.class;
    $("heatmap-img").src = h.overlay;
    $("heatmap-caption").textContent = `${h.class}: ${(100 * h.probability).toFixed(1)}% — where the evidence is (Grad-CAM on ${h.layer}, ${h.heatmap[0].length}×${h.heatmap.length})`;
    $("heatmap").hidden = false;
    document.querySelectorAll("#outputs .bar").forEach((b) => b.classList.toggle("chosen", b.dataset.class === h.class));
  } catch (e) {
    if (seq === state.heatSeq) showError("explore-error", e.message);
  }
}

function drawOutputs() {
  const r = state.explored;
  if (!r) return;
  const out = $("outputs");
  const slider = r.multi_label
    ? `<label>threshold <input type="range" id="threshold" min="0.01" max="0.99" step="0.01" value="${(state.threshold ?? r.threshold).toFixed(2)}"> <span id="threshold-value">${(state.threshold ?? r.threshold).toFixed(2)}</span></label>`
    : "";
  const t = state.threshold ?? r.threshold;
  const title = r.multi_label ? "dense layer → sigmoid per tag (tags above the threshold are predicted)" : "dense layer → softmax";
  out.innerHTML = `<h3>${title}</h3>${slider}` + r.outputs.map((o) => {
    const above = r.multi_label ? o.probability > t : false;
    const marker = r.multi_label ? `<div class="threshold" style="left:${(t * 100).toFixed(1)}%"></div>` : "";
    const chosen = o.class === state.chosenClass ? " chosen" : "";
    return `<div class="bar${above ? " above" : ""}${chosen}" tabindex="0" role="button" data-class="${escapeHtml(o.class)}" title="show where the evidence for ${escapeHtml(o.class)} is"><span class="name">${escapeHtml(o.class)}</span><span class="track"><div class="fill" style="width:${(o.probability * 100).toFixed(1)}%"></div>${marker}</span><span>${(o.probability * 100).toFixed(1)}% (logit ${o.logit.toFixed(2)})</span></div>`;
  }).join("");
  out.querySelectorAll(".bar").forEach((b) => {
    b.addEventListener("click", () => showHeatmap(b.dataset.class));
    b.addEventListener("keydown", (ev) => { if (ev.key === "Enter") showHeatmap(b.dataset.class); });
  });
  const s = $("threshold");
  if (s) s.addEventListener("input", () => { state.threshold = parseFloat(s.value); drawOutputs(); $("threshold").focus(); });
}

async function explain(stage, channel, at) {
  try {
    const r = await api("/api/explain", { image: $("explore-select").value, layer: stage.conv_layer, channel, x: at.x, y: at.y });
    $("explanation").textContent = r.text;
  } catch (e) {
    $("explanation").textContent = e.message;
  }
}

// ---- training view -------------------------------------------------------------------------
async function startTraining() {
  hideError("train-error");
  const body = { epochs: parseInt($("train-epochs").value, 10), learning_rate: parseFloat($("train-lr").value) };
  try {
    await api("/api/training", body);
    state.training.follow = true;
    pollTraining();
    pollModel();
  } catch (e) {
    showError("train-error", e.message);
  }
}

async function pollTraining() {
  const t = state.training;
  if (t.polling) return;
  t.polling = true;
  try {
    for (;;) {
      const r = await api(`/api/training?since=${t.steps.length}`);
      if (r.run !== t.run) {
        // A new run: start its record afresh.
        Object.assign(t, { run: r.run, steps: [], epochs: [], total: r.total_steps });
        if (r.steps.length && r.steps[0].step !== 0) continue;
      }
      t.steps.push(...r.steps);
      t.epochs = r.epochs;
      t.total = r.total_steps;
      drawTraining(r);
      if (r.status !== "training") break;
      await new Promise((ok) => setTimeout(ok, 250));
    }
  } catch (e) {
    showError("train-error", e.message);
  } finally {
    t.polling = false;
  }
}

function drawTraining(r) {
  const t = state.training;
  const slider = $("step-slider");
  slider.max = String(Math.max(t.steps.length - 1, 0));
  if (t.follow) slider.value = slider.max;
  const done = r.status !== "training";
  $("train-button").disabled = !done;
  $("train-status").textContent = r.status === "training"
    ? `training: step ${t.steps.length} of ${t.total}…`
    : r.status === "failed" ? "the run failed" : `done: ${t.steps.length} steps`;
  if (r.status === "failed" && r.error) showError("train-error", r.error);
  $("train-epochs-list").innerHTML = t.epochs.map((e) => `epoch ${e.epoch}: train loss ${e.train_loss.toFixed(3)}, valid loss ${e.valid_loss.toFixed(3)}, valid accuracy ${(100 * e.valid_accuracy).toFixed(1)}%`).join("<br>");
  drawLoss();
  drawStep(parseInt(slider.value, 10));
}

function drawLoss() {
  const t = state.training, svg = $("loss-chart");
  const W = 420, H = 180, pad = 28;
  const n = Math.max(t.total, t.steps.length, 2);
  const finite = t.steps.map((s) => s.loss).filter(Number.isFinite);
  const top = Math.max(...finite, 1e-6);
  const px = (i) => pad + (i / (n - 1)) * (W - pad - 6);
  const py = (v) => H - pad + 4 - (Math.min(v, top) / top) * (H - pad - 10);
  const points = t.steps.filter((s) => Number.isFinite(s.loss)).map((s) => `${px(s.step).toFixed(1)},${py(s.loss).toFixed(1)}`).join(" ");
  const at = parseInt($("step-slider").value, 10);
  const marker = t.steps[at] ? `<line x1="${px(at)}" x2="${px(at)}" y1="6" y2="${H - pad + 4}" stroke="#a00" stroke-width="1"/>` : "";
  svg.innerHTML = `<line x1="${pad}" y1="${H - pad + 4}" x2="${W - 6}" y2="${H - pad + 4}" stroke="#888"/>`
    + `<line x1="${pad}" y1="6" x2="${pad}" y2="${H - pad + 4}" stroke="#888"/>`
    + `<text x="2" y="14" font-size="10">${top.toFixed(2)}</text><text x="14" y="${H - pad + 8}" font-size="10">0</text>`
    + `<text x="${W - 60}" y="${H - 8}" font-size="10">step ${n}</text>`
    + `<polyline fill="none" stroke="#2b7bb9" stroke-width="1.5" points="${points}"/>` + marker;
  $("loss-caption").textContent = `training loss per step (${t.steps.length} of ${t.total} steps)`;
}

function drawStep(i) {
  const s = state.training.steps[i];
  if (!s) { $("step-label").textContent = ""; $("train-kernels").innerHTML = ""; return; }
  $("step-label").textContent = `step ${s.step + 1}, epoch ${s.epoch}: loss ${s.loss.toFixed(4)}, learning rate ${s.learning_rate.toExponential(2)}`;
  const peak = Math.max(...s.kernels.flat(3).map(Math.abs), 1e-6);
  const color = (v) => {
    const a = Math.min(Math.abs(v) / peak, 1);
    return v >= 0 ? `rgb(0, ${Math.round(40 + 180 * a)}, 0)` : `rgb(${Math.round(40 + 180 * a)}, 0, 0)`;
  };
  $("train-kernels").innerHTML = s.kernels.map((k, n) => k.map((plane) => `<table class="kernel"><caption>conv1 kernel ${n}</caption>`
    + plane.map((row) => "<tr>" + row.map((v) => `<td style="background:${color(v)}">${v.toFixed(2)}</td>`).join("") + "</tr>").join("")
    + "</table>").join("")).join("");
  drawLoss();
}

// ---- start ---------------------------------------------------------------------------------
async function start() {
  state.presets = await api("/api/presets");
  $("preset-select").innerHTML += state.presets.map((p) => `<option value="${p.name}">${p.name}</option>`).join("");
  const first = state.presets.find((p) => p.name === "bottom-edge") || state.presets[0];
  $("preset-select").value = first.name;
  buildGrid(first.rows);
  const list = await loadImages();
  const photo = list.find((i) => /chelsea|camera/.test(i.name)) || list[0];
  state.image = photo.id;
  $("image-select").value = photo.id;
  $("explore-select").value = list[0].id;

  $("preset-select").addEventListener("change", (ev) => {
    const p = state.presets.find((q) => q.name === ev.target.value);
    if (p) { buildGrid(p.rows); $("size-select").value = String(p.rows.length); convolve(); }
  });
  $("size-select").addEventListener("change", (ev) => { resizeKernel(parseInt(ev.target.value, 10)); $("preset-select").value = ""; convolve(); });
  $("padding-select").addEventListener("change", () => { clearArithmetic(); convolve(); });
  $("color-check").addEventListener("change", convolve);
  $("image-select").addEventListener("change", (ev) => { state.image = ev.target.value; clearArithmetic(); convolve(); });
  $("upload-form").addEventListener("submit", upload);
  const resp = $("response-img");
  resp.addEventListener("mousemove", (ev) => { if (state.dims) { state.cursor = pixelAt(resp, ev, state.dims); arithmeticSoon(); } });
  resp.addEventListener("keydown", (ev) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[ev.key]) { ev.preventDefault(); moveCursor(...moves[ev.key]); }
  });
  resp.addEventListener("focus", () => { if (!state.cursor) moveCursor(0, 0); });
  $("explore-button").addEventListener("click", explore);
  $("explore-select").addEventListener("change", () => { updateSpreadsheetLink(); explore(); });
  $("train-button").addEventListener("click", startTraining);
  $("step-slider").addEventListener("input", (ev) => {
    const v = parseInt(ev.target.value, 10);
    state.training.follow = v >= state.training.steps.length - 1;
    drawStep(v);
  });
  convolve();
  pollModel();
  pollTraining();
}

start().catch((e) => showError("upload-error", `The page could not start: ${e.message}`));
