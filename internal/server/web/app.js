// lmood web page: scores text with POST /api/score and colours each token
// with the terminal heatmap's scale (GET /api/palette). Every piece of
// user or model text is inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let palette = [];
let models = [];

function setStatus(msg, isError) {
  $("status").textContent = msg;
  $("status").classList.toggle("error", !!isError);
}

async function getJSON(url, init) {
  const resp = await fetch(url, init);
  const body = await resp.json().catch(() => ({ error: resp.status + " " + resp.statusText }));
  if (!resp.ok) {
    const where = body.field ? " (" + body.field + ")" : "";
    throw new Error((body.error || resp.statusText) + where);
  }
  return body;
}

function fillLayers() {
  const m = models.find((x) => x.name === $("model").value);
  const sel = $("layer");
  sel.replaceChildren();
  if (!m) return;
  for (let i = 0; i <= m.num_layers; i++) {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = i === m.middle_layer ? i + " (middle)" : String(i);
    if (i === m.middle_layer) o.selected = true;
    sel.append(o);
  }
}

function fmt(v, d) {
  return v === null || v === undefined || !isFinite(v) ? "n/a" : Number(v).toFixed(d === undefined ? 3 : d);
}

// swatch returns the palette colour at position t in [0, 1].
function swatch(t) {
  const i = Math.round(Math.max(0, Math.min(1, t)) * (palette.length - 1));
  return palette[i];
}

let last = null;

function render() {
  const rec = last;
  if (!rec) return;
  const by = $("value").value;
  const groups = rec.groups;
  const val = (g) => (by === "ratio" ? g.ratio : g.ood);
  // The colour range leaves position 0 out (as the terminal heatmap does)
  // unless it is counted or the only token.
  const skipFirst = rec.first_token === "excluded";
  const vals = groups.filter((g) => !(skipFirst && g.start === 0 && groups.length > 1)).map(val).filter((v) => v !== null && isFinite(v));
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (!vals.length) { lo = 0; hi = 1; }
  const box = $("tokens");
  box.replaceChildren();
  groups.forEach((g, i) => {
    const span = document.createElement("span");
    span.className = "tok";
    span.tabIndex = i === 0 ? 0 : -1;
    span.textContent = g.text === "" ? "∅" : g.text;
    const v = val(g);
    if (v === null || !isFinite(v)) {
      span.classList.add("undef");
    } else {
      const c = swatch(hi > lo ? (v - lo) / (hi - lo) : 0.5);
      span.style.background = c.bg;
      span.style.color = c.fg;
    }
    const toks = rec.tokens.slice(g.start, g.end);
    const parts = [
      (by === "ratio" ? "ratio " : "OOD ") + fmt(v),
      "ratio " + fmt(g.ratio) + (toks.length === 1 ? " ± " + fmt(toks[0].ratio_std) : ""),
      "surprisal " + (g.surprisal === undefined ? "n/a" : fmt(g.surprisal, 2) + " nats"),
      toks.length > 1 ? toks.length + " tokens (mean)" : "token id " + toks[0].id,
    ];
    if (g.start === 0 && skipFirst && groups.length > 1) parts.push("position 0: excluded from the prompt ratio and the colour range");
    span.title = parts.join(" · ");
    span.dataset.value = String(v);
    const show = () => { $("detail").textContent = JSON.stringify(g.text) + ": " + parts.join(" · "); };
    span.addEventListener("mouseenter", show);
    span.addEventListener("focus", show);
    span.addEventListener("keydown", (e) => {
      const spans = box.querySelectorAll(".tok");
      let j = -1;
      if (e.key === "ArrowRight" || e.key === "ArrowDown") j = Math.min(i + 1, spans.length - 1);
      if (e.key === "ArrowLeft" || e.key === "ArrowUp") j = Math.max(i - 1, 0);
      if (e.key === "Home") j = 0;
      if (e.key === "End") j = spans.length - 1;
      if (j >= 0) { e.preventDefault(); spans[i].tabIndex = -1; spans[j].tabIndex = 0; spans[j].focus(); }
    });
    box.append(span);
  });
  $("lo").textContent = "min " + fmt(lo, 2);
  $("hi").textContent = "max " + fmt(hi, 2);
  $("bar").style.background = "linear-gradient(to right, " + palette.map((c) => c.bg).join(", ") + ")";
  const what = by === "ratio" ? "drift ratio" : "OOD score " + (rec.direction === "expand" ? "+ln(ratio)" : "-ln(ratio)");
  $("label").textContent = "per-token " + what + ", hidden state " + rec.layer + " of " + rec.num_layers +
    "; position 0 " + (skipFirst ? "shown but excluded from the prompt ratio" : "included") +
    "; a character split across tokens shows their mean";
  $("summary").textContent = rec.model + ": ratio " + fmt(rec.ratio) + " ± " + fmt(rec.ratio_std) + ", OOD " + fmt(rec.ood) +
    " (" + rec.tokens.length + " tokens, K=" + rec.samples + ")";
  $("result").hidden = false;
}

async function score(e) {
  if (e) e.preventDefault();
  const text = $("text").value;
  if (!text.trim()) { setStatus("Type some text first.", true); $("text").focus(); return; }
  const req = {
    model: $("model").value || undefined,
    prompt: text,
    layer: Number($("layer").value),
    groups: true,
    options: { samples: Number($("samples").value) || 16, surprisal: true },
  };
  $("score").disabled = true;
  setStatus("Scoring…");
  try {
    const rec = await getJSON("/api/score", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req) });
    if (rec.error) throw new Error(rec.error);
    last = rec;
    render();
    setStatus("Scored " + rec.tokens.length + " tokens.");
  } catch (err) {
    setStatus("Error: " + err.message, true);
  } finally {
    $("score").disabled = false;
  }
}

async function init() {
  $("form").addEventListener("submit", score);
  $("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) score(e); });
  $("model").addEventListener("change", fillLayers);
  $("value").addEventListener("change", render);
  try {
    const [p, m] = await Promise.all([getJSON("/api/palette"), getJSON("/api/models")]);
    palette = p.colors;
    models = m.models.filter((x) => !x.error);
    for (const x of models) {
      const o = document.createElement("option");
      o.value = x.name;
      o.textContent = x.name;
      if (x.default) o.selected = true;
      $("model").append(o);
    }
    fillLayers();
  } catch (err) {
    setStatus("Cannot reach the server: " + err.message, true);
    return;
  }
  // ?text=...&k=... prefills (and scores) the page, for links and screenshots.
  const q = new URLSearchParams(location.search);
  if (q.get("k")) $("samples").value = q.get("k");
  if (q.get("text")) { $("text").value = q.get("text"); score(); }
  document.body.dataset.ready = "1";
}

init();
