// LeukoScope web page: plain JS, no build step, no third-party code. Talks to /api/v1 on this server.
"use strict";

const API = "/api/v1";
const PARALLEL = 2; // uploads in flight at once; the server queues the rest anyway
const $ = (id) => document.getElementById(id);

function authHeaders() {
  const token = $("token-input").value.trim();
  if (token) sessionStorage.setItem("leukoscope-token", token);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function apiFetch(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    if (response.status === 401) $("token-input").focus();
    throw new Error(message);
  }
  return body;
}

async function loadModelInfo() {
  try {
    const info = await apiFetch(`${API}/model`);
    const card = info.card;
    $("model-info").textContent =
      `Model ${info.model} · ${card.backbone} · classes ${card.class_names.join(" / ")} · ${info.backend} ${info.precision}`;
    document.body.dataset.explain = info.explain ? "yes" : "no";
    if (!info.explain) $("explain-toggle").disabled = true;
  } catch (err) {
    $("model-info").textContent = `Model info unavailable: ${err.message}`;
  }
}

function makeCard(file) {
  const node = $("result-template").content.firstElementChild.cloneNode(true);
  const img = node.querySelector(".result-image");
  const originalUrl = URL.createObjectURL(file);
  img.src = originalUrl;
  img.alt = `uploaded image ${file.name}`;
  node.dataset.original = originalUrl;
  node.querySelector(".result-name").textContent = file.name; // textContent: names are never HTML
  $("results").prepend(node);
  return node;
}

function renderBars(node, probabilities, predicted) {
  const bars = node.querySelector(".bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(probabilities)) {
    const bar = document.createElement("div");
    bar.className = name === predicted ? "bar top" : "bar";
    bar.dataset.class = name;
    const label = document.createElement("span");
    label.textContent = `${name}: ${(100 * p).toFixed(1)}%`;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${Math.max(0, Math.min(100, 100 * p)).toFixed(1)}%`;
    track.append(fill);
    bar.append(label, track);
    bars.append(bar);
  }
}

function showHeatmap(node, heatmap) {
  const toggle = node.querySelector(".overlay-toggle");
  const box = node.querySelector(".overlay-checkbox");
  const img = node.querySelector(".result-image");
  toggle.hidden = false;
  box.checked = true;
  img.src = heatmap;
  box.addEventListener("change", () => { img.src = box.checked ? heatmap : node.dataset.original; });
}

async function analyse(file) {
  const node = makeCard(file);
  const form = new FormData();
  form.append("file", file, file.name);
  const explain = $("explain-toggle").checked;
  try {
    const result = await apiFetch(`${API}/predict?explain=${explain}`, { method: "POST", body: form });
    node.querySelector(".result-class").textContent = result.class;
    node.dataset.predicted = result.class;
    renderBars(node, result.probabilities, result.class);
    if (result.heatmap) showHeatmap(node, result.heatmap);
  } catch (err) {
    node.classList.add("failed");
    node.querySelector(".result-class").textContent = "error";
    const msg = node.querySelector(".result-error");
    msg.hidden = false;
    msg.textContent = err.message;
  }
}

async function analyseAll(files) {
  const queue = Array.from(files);
  if (!queue.length) return;
  let done = 0;
  $("status").textContent = `Analysing ${queue.length} image(s)…`;
  const worker = async () => {
    while (queue.length) {
      await analyse(queue.shift());
      done += 1;
      $("status").textContent = `Analysed ${done} image(s).`;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}

function setUpDropZone() {
  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("dragging"); });
  }
  zone.addEventListener("drop", (e) => analyseAll(e.dataTransfer.files));
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file-input").click(); });
  $("file-input").addEventListener("change", (e) => { analyseAll(e.target.files); e.target.value = ""; });
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-input").value = sessionStorage.getItem("leukoscope-token") || "";
  $("token-input").addEventListener("change", loadModelInfo);
  $("clear-button").addEventListener("click", () => {
    for (const node of $("results").querySelectorAll(".result")) URL.revokeObjectURL(node.dataset.original);
    $("results").replaceChildren();
    $("status").textContent = "";
  });
  setUpDropZone();
  loadModelInfo();
});
