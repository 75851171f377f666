// The operator page: upload a tile, draw the predicted mask over it, list the regions.
// Plain browser JavaScript, no build step, no third-party code.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // { file, bitmap, result }
let latest = 0; // number of the newest analysis: slower, older answers must not overwrite it

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function predictUrl(format) {
  const params = new URLSearchParams({ format });
  const threshold = $("threshold").value.trim();
  if (threshold !== "") params.set("threshold", threshold);
  return `/predict?${params}`;
}

async function post(file, format) {
  const body = new FormData();
  body.append("image", file, file.name);
  const response = await fetch(predictUrl(format), { method: "POST", body });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(detail);
  }
  return response;
}

// COCO RLE is column-major: runs walk down each column, then on to the next one.
function rleToMask({ size: [height, width], counts }) {
  const mask = new Uint8Array(height * width);
  let index = 0;
  counts.forEach((run, i) => {
    if (i % 2 === 1) {
      for (let k = index; k < index + run; k++) {
        const x = Math.floor(k / height);
        const y = k % height;
        mask[y * width + x] = 1;
      }
    }
    index += run;
  });
  return mask;
}

function draw() {
  const { bitmap, result } = current;
  const canvas = $("canvas");
  canvas.width = result.width;
  canvas.height = result.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (bitmap) ctx.drawImage(bitmap, 0, 0, result.width, result.height);
  if (!$("show-mask").checked) return;
  const mask = rleToMask(result.rle);
  const overlay = ctx.getImageData(0, 0, result.width, result.height);
  for (let p = 0; p < mask.length; p++) {
    if (mask[p]) {
      // Blend red over the photo so the surface under the defect stays visible.
      overlay.data[4 * p] = Math.round(0.4 * overlay.data[4 * p] + 0.6 * 255);
      overlay.data[4 * p + 1] = Math.round(0.4 * overlay.data[4 * p + 1]);
      overlay.data[4 * p + 2] = Math.round(0.4 * overlay.data[4 * p + 2]);
      overlay.data[4 * p + 3] = 255;
    }
  }
  ctx.putImageData(overlay, 0, 0);
  ctx.strokeStyle = "#ffab00";
  ctx.lineWidth = 1;
  for (const { bbox: [x0, y0, x1, y1] } of result.regions) {
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0 - 1, y1 - y0 - 1);
  }
}

function showSummary(result) {
  const verdict = $("verdict");
  verdict.textContent = result.has_defect ? "Defect found" : "No defect";
  verdict.className = result.has_defect ? "defect" : "clean";
  $("size").textContent = `${result.width} x ${result.height} px`;
  $("fraction").textContent = `${(100 * result.defect_fraction).toFixed(3)} %`;
  $("pixels").textContent = String(result.defect_pixels);
  $("used-threshold").textContent = String(result.threshold);
  // Models without a tile decision head answer null: the pixel rule alone decided.
  $("tile-score").textContent =
    result.tile_score === null
      ? "none (pixel rule)"
      : `${result.tile_score.toFixed(3)} / ${result.tile_threshold}` +
        (result.views > 1 ? ` (uncertain: the mean of ${result.views} mirrored views)` : "");
  const rows = $("regions").querySelector("tbody");
  rows.replaceChildren(
    ...result.regions.map((region, i) => {
      const row = document.createElement("tr");
      for (const text of [i + 1, `[${region.bbox.join(", ")}]`, region.area]) {
        const cell = document.createElement("td");
        cell.textContent = String(text);
        row.append(cell);
      }
      return row;
    }),
  );
  $("result").hidden = false;
}

async function analyze(file) {
  const mine = ++latest;
  setStatus(`Analyzing ${file.name}…`);
  try {
    const response = await post(file, "rle");
    const result = await response.json();
    // The browser may not decode every format the API accepts (TIFF): then the mask shows alone.
    const bitmap = await createImageBitmap(file).catch(() => null);
    if (mine !== latest) return;
    current = { file, bitmap, result };
    showSummary(result);
    draw();
    setStatus(bitmap ? `Analyzed ${file.name}.` : `Analyzed ${file.name} (this browser cannot display the photo itself).`);
  } catch (error) {
    if (mine !== latest) return;
    current = null;
    $("result").hidden = true;
    setStatus(`Could not analyze ${file.name}: ${error.message}`, true);
  }
}

async function downloadMask() {
  if (!current) return;
  try {
    const blob = await (await post(current.file, "png")).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${current.file.name.replace(/\.[^.]+$/, "")}-mask.png`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    setStatus(`Could not download the mask: ${error.message}`, true);
  }
}

function init() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) analyze(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter") $("file").click(); });
  $("file").addEventListener("change", () => { if ($("file").files.length) analyze($("file").files[0]); });
  $("threshold").addEventListener("change", () => { if (current) analyze(current.file); });
  $("show-mask").addEventListener("change", () => { if (current) draw(); });
  $("download").addEventListener("click", downloadMask);
  fetch("/model")
    .then((response) => (response.ok ? response.json() : Promise.reject(new Error(response.statusText))))
    .then((model) => { $("model-name").textContent = `${model.name} ${model.version} (${model.providers.join(", ")})`; })
    .catch(() => { $("model-name").textContent = "not ready yet"; });
}

init();
