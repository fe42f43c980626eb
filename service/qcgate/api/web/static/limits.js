// Site limits: those in force, the newest proposal, agreement of people and qcgate; admins propose and apply.
"use strict";
(function () {
  const box = document.getElementById("limits");
  const message = document.getElementById("limits-message");
  const agreement = document.getElementById("agreement");

  function section(title, content) { return qc.el("section", {}, qc.el("h2", { text: title }), content); }

  async function load() {
    const result = await qc.api("/api/v1/limits");
    if (!result.ok) { message.textContent = qc.explain(result, "Site limits"); return; }
    const b = result.body;
    message.textContent = b.report_only ? "Report-only mode: flags are shown and sent but do not route." : "";
    box.replaceChildren(message,
      section("Settings", qc.table([b.settings || {}])),
      section("Applied", (b.applied || []).length ? qc.table(b.applied) : qc.el("p", { text: "No site limits applied." })),
      section("Newest proposal", (b.proposal || []).length ? qc.table(b.proposal) : qc.el("p", { text: "No proposal." })));
    for (const by of ["station", "protocol"]) {
      const rows = await qc.api("/api/v1/reviews/agreement?by=" + by);
      agreement.append(qc.el("h3", { text: "By " + by }), rows.ok ? (rows.body.length ? qc.table(rows.body) : qc.el("p", { text: "No reviews yet." })) : qc.el("p", { class: "notice", text: qc.explain(rows, "Agreement figures") }));
    }
  }

  const propose = document.getElementById("propose");
  if (propose) {
    propose.addEventListener("click", async function () {
      const out = document.getElementById("proposal");
      const result = await qc.api("/api/v1/limits/proposal", { method: "POST" });
      if (!result.ok) { out.replaceChildren(qc.el("p", { class: "notice", text: qc.explain(result, "Proposals") })); return; }
      const apply = qc.el("button", { type: "button", text: "Apply proposal " + result.body.proposal });
      apply.addEventListener("click", async function () {
        const applied = await qc.api("/api/v1/limits/" + result.body.proposal + "/apply", { method: "POST" });
        out.append(qc.el("p", { text: applied.ok ? "Applied." : qc.explain(applied, "Applying limits") }));
        if (applied.ok) load();
      });
      out.replaceChildren(qc.table(result.body.rows || []), apply);
    });
  }
  load();
})();
