// The worklist: j/k/arrows move, Enter opens, "/" jumps to the filters; rows refresh every few seconds.
"use strict";
(function () {
  const table = document.getElementById("worklist");
  if (!table) return;
  const tbody = table.tBodies[0];
  const live = document.getElementById("live");
  let selected = null; // the selected row's series UID

  const rows = () => Array.from(tbody.querySelectorAll("tr[data-uid]"));

  function select(row, focus) {
    for (const r of rows()) { r.classList.remove("selected"); r.setAttribute("tabindex", "-1"); r.removeAttribute("aria-selected"); }
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("tabindex", "0");
    row.setAttribute("aria-selected", "true");
    selected = row.dataset.uid;
    if (focus) { row.focus(); row.scrollIntoView({ block: "nearest" }); }
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.findIndex((r) => r.dataset.uid === selected);
    select(all[Math.max(0, Math.min(all.length - 1, at < 0 ? 0 : at + step))], true);
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (qc.typing(event)) {
      if (event.key === "Escape") { event.target.blur(); move(0); }
      return;
    }
    if (event.key === "j" || event.key === "ArrowDown") { move(1); event.preventDefault(); }
    else if (event.key === "k" || event.key === "ArrowUp") { move(-1); event.preventDefault(); }
    else if (event.key === "Enter") {
      const row = rows().find((r) => r.dataset.uid === selected);
      if (row) { window.location.href = row.dataset.href; event.preventDefault(); }
    } else if (event.key === "/") {
      const first = document.querySelector(".filters select, .filters input");
      if (first) { first.focus(); event.preventDefault(); }
    }
  });
  tbody.addEventListener("click", function (event) {
    const row = event.target.closest("tr[data-uid]");
    if (row && event.target.tagName !== "A") select(row, false);
  });

  async function refresh() {
    if (document.hidden) return;
    let response;
    try {
      response = await fetch(table.dataset.rowsUrl, { credentials: "same-origin" });
    } catch (e) {
      live.textContent = "Cannot reach qcgate; retrying.";
      return;
    }
    if (response.redirected && new URL(response.url).pathname === "/login") {
      live.textContent = "Your session has ended: reload to log in.";
      return;
    }
    if (!response.ok) { live.textContent = "Update failed (HTTP " + response.status + ")."; return; }
    const html = await response.text();
    const before = rows().map((r) => r.dataset.uid).join();
    const hadFocus = document.activeElement && tbody.contains(document.activeElement);
    const template = document.createElement("template");
    template.innerHTML = html; // our own server-rendered, escaped rows
    tbody.replaceChildren(template.content);
    const again = rows().find((r) => r.dataset.uid === selected);
    if (again) select(again, hadFocus);
    const after = rows().map((r) => r.dataset.uid).join();
    live.textContent = before === after ? "" : "Updated " + new Date().toLocaleTimeString() + ".";
  }

  if (rows().length) select(rows()[0], false);
  setInterval(refresh, 1000 * Number(table.dataset.poll || 5));
})();
