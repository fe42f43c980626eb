// Pairwise ranking: two series of one protocol side by side; 1 left, 2 right, 3 similar, n next.
"use strict";
(function () {
  const message = document.getElementById("pairs-message");
  const pair = document.getElementById("pair");
  const choices = document.getElementById("choices");
  const form = document.getElementById("pair-filters");
  let current = null;

  function show(side, uid) {
    const img = document.getElementById(side);
    img.src = "/api/v1/series/" + uid + "/mosaic.png";
    document.getElementById(side + "-caption").replaceChildren(qc.el("a", { href: "/series/" + uid, text: side + ": " + uid }));
  }

  async function next() {
    const protocol = new FormData(form).get("protocol");
    const result = await qc.api("/api/v1/pairs/next" + (protocol ? "?protocol=" + encodeURIComponent(protocol) : ""));
    current = null;
    pair.hidden = choices.hidden = true;
    if (result.status === 204) { message.textContent = "No pair left to judge."; return; }
    if (!result.ok) { message.textContent = qc.explain(result, "Pairs"); return; }
    current = result.body;
    show("left", current.left);
    show("right", current.right);
    pair.hidden = choices.hidden = false;
    message.textContent = "Which series has the better image quality?";
  }

  async function choose(choice) {
    if (!current) return;
    const result = await qc.api("/api/v1/pairs", { method: "POST", body: { left: current.left, right: current.right, choice: choice } });
    if (!result.ok) { message.textContent = qc.explain(result, "Pairs"); return; }
    next();
  }

  for (const b of choices.querySelectorAll("button")) b.addEventListener("click", () => choose(b.dataset.choice));
  document.addEventListener("keydown", function (event) {
    if (qc.typing(event) || event.altKey || event.ctrlKey || event.metaKey) return;
    const keys = { 1: "left", 2: "right", 3: "similar" };
    if (event.key in keys) choose(keys[event.key]);
    else if (event.key === "n") next();
  });
  if (message.dataset.mayReview !== "yes") { form.hidden = true; return; } // the REST routes would refuse: ask nothing
  form.addEventListener("submit", function (event) { event.preventDefault(); next(); });
  next();
})();
