// The series view: slice viewer (scroll, window/level), mosaic with the findings' worst slices, reviews.
"use strict";
(function () {
  const root = document.getElementById("series");
  if (!root) return;
  const uid = root.dataset.uid;
  const base = "/api/v1/series/" + uid;

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !qc.typing(event)) window.location.href = "/";
  });

  // ---- images
  const state = { stacks: [], stack: 0, index: 0, level: null, window: null };
  const mosaic = document.getElementById("mosaic");
  const slice = document.getElementById("slice");
  const range = document.getElementById("slice-range");
  const stackSelect = document.getElementById("stack");
  const levelInput = document.getElementById("level");
  const windowInput = document.getElementById("window");
  const caption = document.getElementById("slice-caption");
  const highlights = document.getElementById("highlights");
  const message = document.getElementById("images-message");
  const findings = Array.from(document.querySelectorAll(".slice-link"));

  const current = () => state.stacks[state.stack];

  function windowQuery() {
    const s = current();
    const q = new URLSearchParams({ stack: String(state.stack) });
    if (state.window !== null && (state.window !== s.window || state.level !== s.level)) {
      q.set("window", String(state.window));
      q.set("level", String(state.level));
    }
    return q.toString();
  }

  function showSlice() {
    const s = current();
    if (!s) return;
    state.index = Math.max(0, Math.min(s.slices.length - 1, state.index));
    const number = s.slices[state.index];
    range.max = String(s.slices.length - 1);
    range.value = String(state.index);
    slice.src = base + "/slices/" + number + ".png?" + windowQuery();
    slice.alt = "Slice " + number + " of " + s.label;
    const worst = findings.filter((b) => Number(b.dataset.slice) === number && (!b.dataset.stackLabel || b.dataset.stackLabel === s.label));
    caption.textContent = "Slice " + number + " (" + (state.index + 1) + " of " + s.slices.length + ", " + s.label + ")" +
      (worst.length ? ": worst slice of " + worst.map((b) => b.dataset.kind).join(", ") : "");
    drawHighlights();
  }

  function showStack(index) {
    state.stack = index;
    const s = current();
    state.level = s.level;
    state.window = s.window;
    levelInput.value = s.level.toPrecision(5);
    windowInput.value = s.window.toPrecision(5);
    mosaic.src = base + "/mosaic.png?stack=" + index;
    showSlice();
  }

  function drawHighlights() {
    const s = current();
    if (!s || !mosaic.naturalWidth) return;
    const scale = mosaic.clientWidth / mosaic.naturalWidth;
    highlights.replaceChildren();
    const mark = (i, cls) => {
      const col = i % s.mosaic_columns, row = Math.floor(i / s.mosaic_columns);
      const box = qc.el("div", { class: "tile " + cls }); // CSSOM, not a style attribute: the CSP forbids those
      box.style.left = col * s.tile_width * scale + "px";
      box.style.top = row * s.tile_height * scale + "px";
      box.style.width = s.tile_width * scale + "px";
      box.style.height = s.tile_height * scale + "px";
      highlights.append(box);
    };
    for (const b of findings) {
      if (b.dataset.stackLabel && b.dataset.stackLabel !== s.label) continue;
      const i = s.slices.indexOf(Number(b.dataset.slice));
      if (i >= 0) mark(i, "worst");
    }
    mark(state.index, "current");
  }

  function applyWindow() {
    const level = Number(levelInput.value), width = Number(windowInput.value);
    if (Number.isFinite(level) && Number.isFinite(width) && width > 0) {
      state.level = level;
      state.window = width;
      showSlice();
    }
  }

  async function loadImages() {
    const result = await qc.api(base + "/images");
    if (!result.ok) { message.hidden = false; message.textContent = qc.explain(result, "Images"); return; }
    state.stacks = result.body.stacks;
    stackSelect.replaceChildren(...state.stacks.map((s, i) => qc.el("option", { value: i, text: s.label + " (" + s.slices.length + ")" })));
    stackSelect.value = String(result.body.default_stack);
    state.index = Math.floor(state.stacks[result.body.default_stack].slices.length / 2); // the middle, unless a finding says where
    showStack(result.body.default_stack);
    const firstWorst = findings[0];
    if (firstWorst) jumpTo(firstWorst, false);
  }

  function jumpTo(button, focus) {
    const label = button.dataset.stackLabel;
    const stackIndex = label ? state.stacks.findIndex((s) => s.label === label) : state.stack;
    if (stackIndex >= 0 && stackIndex !== state.stack) { stackSelect.value = String(stackIndex); showStack(stackIndex); }
    const i = current().slices.indexOf(Number(button.dataset.slice));
    if (i >= 0) { state.index = i; showSlice(); }
    if (focus) slice.focus();
  }

  if (root.dataset.images === "yes" && slice) {
    loadImages();
    mosaic.addEventListener("load", drawHighlights);
    mosaic.addEventListener("click", function (event) {
      const s = current();
      if (!s) return;
      const scale = mosaic.clientWidth / mosaic.naturalWidth;
      const col = Math.floor(event.offsetX / (s.tile_width * scale)), row = Math.floor(event.offsetY / (s.tile_height * scale));
      const i = row * s.mosaic_columns + col;
      if (i < s.slices.length) { state.index = i; showSlice(); }
    });
    window.addEventListener("resize", drawHighlights);
    range.addEventListener("input", function () { state.index = Number(range.value); showSlice(); });
    stackSelect.addEventListener("change", function () { state.index = 0; showStack(Number(stackSelect.value)); });
    levelInput.addEventListener("change", applyWindow);
    windowInput.addEventListener("change", applyWindow);
    document.getElementById("window-reset").addEventListener("click", function () { showStack(state.stack); });
    slice.addEventListener("keydown", function (event) {
      const steps = { ArrowUp: -1, ArrowDown: 1, ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
      if (event.key in steps) { state.index += steps[event.key]; showSlice(); event.preventDefault(); }
      else if (event.key === "Home") { state.index = 0; showSlice(); event.preventDefault(); }
      else if (event.key === "End") { state.index = current().slices.length - 1; showSlice(); event.preventDefault(); }
    });
    slice.addEventListener("wheel", function (event) { state.index += event.deltaY > 0 ? 1 : -1; showSlice(); event.preventDefault(); }, { passive: false });
    let drag = null;
    slice.addEventListener("pointerdown", function (event) { drag = { x: event.clientX, y: event.clientY, level: state.level, window: state.window }; slice.setPointerCapture(event.pointerId); });
    slice.addEventListener("pointerup", function () { if (drag) { drag = null; showSlice(); } });
    slice.addEventListener("pointermove", function (event) {
      if (!drag) return;
      const s = current(), unit = s.window / 200;
      state.window = Math.max(unit, drag.window + (event.clientX - drag.x) * unit);
      state.level = drag.level + (event.clientY - drag.y) * unit;
      levelInput.value = state.level.toPrecision(5);
      windowInput.value = state.window.toPrecision(5);
    });
    slice.addEventListener("dragstart", (event) => event.preventDefault());
    for (const b of findings) b.addEventListener("click", () => jumpTo(b, true));
  }

  // ---- reviews
  const reviews = document.getElementById("reviews");
  async function loadReviews() {
    const result = await qc.api(base + "/reviews");
    if (!result.ok) { reviews.replaceChildren(qc.el("p", { class: "notice", text: qc.explain(result, "Reviews") })); return; }
    const items = Array.isArray(result.body) ? result.body : result.body.items || [];
    if (!items.length) { reviews.replaceChildren(qc.el("p", { text: "No reviews yet." })); return; }
    reviews.replaceChildren(qc.table(items.map((r) => ({ reviewer: r.reviewer, verdict: r.verdict, kinds: (r.kinds || []).join(", "), comment: r.comment, time: r.created_at, revision: r.revision }))));
  }
  loadReviews();

  const form = document.getElementById("review-form");
  if (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = new FormData(form);
      const body = { verdict: data.get("verdict"), kinds: data.getAll("kinds"), comment: data.get("comment") || "" };
      const result = await qc.api(base + "/reviews", { method: "POST", body: body });
      const out = document.getElementById("review-message");
      if (result.ok) { out.textContent = "Review recorded."; form.reset(); loadReviews(); }
      else out.textContent = qc.explain(result, "Reviews");
    });
  }
})();
