// Shared helpers of the QC page: REST calls with the session's CSRF token, safe DOM building.
"use strict";
window.qc = (function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // fetch() on this origin; state-changing requests carry the session's CSRF token.
  async function api(path, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    if (opts.method && opts.method !== "GET") {
      opts.headers["X-CSRF-Token"] = csrf();
      if (opts.body && typeof opts.body !== "string") {
        opts.body = JSON.stringify(opts.body);
        opts.headers["Content-Type"] = "application/json";
      }
    }
    const response = await fetch(path, opts);
    let body = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) body = await response.json();
    return { ok: response.ok, status: response.status, body: body, redirected: response.redirected };
  }

  // A problem's detail, or a sentence for a route this installation does not have.
  function explain(result, what) {
    const detail = result.body && result.body.detail;
    if ((result.status === 404 || result.status === 405) && (!detail || detail === "Not Found" || detail === "Method Not Allowed"))
      return what + " are not available on this installation.";
    if (result.status === 401) return "Your session has ended: log in again.";
    return detail || what + " could not be loaded (HTTP " + result.status + ").";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A table of objects: columns are the keys of the first row unless given.
  function table(rows, columns) {
    const cols = columns || (rows.length ? Object.keys(rows[0]) : []);
    const format = (v) => (v === null || v === undefined ? "" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : typeof v === "object" ? JSON.stringify(v) : String(v));
    return el("table", {}, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { text: c })))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", { text: format(r[c]) }))))));
  }

  function typing(event) {
    const t = event.target;
    return t && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName));
  }

  return { api: api, explain: explain, el: el, table: table, typing: typing };
})();
