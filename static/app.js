// Small progressive enhancements. Kept out of the HTML: the pages carry no inline script or handler,
// so a strict Content-Security-Policy can forbid them. Every page works without this file.
"use strict";

// Copy to clipboard: <button data-copy-target="#id"> copies that element's text.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copyTarget);
  if (!source) return;
  const label = button.innerHTML;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    // No clipboard access (plain http, old browser): select the text so Ctrl+C works.
    window.getSelection().selectAllChildren(source);
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => { button.innerHTML = label; }, 1500);
});

// A click anywhere on a table row with data-href opens it, as its first link does (keyboard users
// have that link). Clicks on the row's own links, buttons and forms keep their meaning, and a
// text selection is not a click.
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (!row || event.target.closest("a, button, input, select, textarea, label, form, summary")) return;
  if (window.getSelection().toString()) return;
  if (event.metaKey || event.ctrlKey) window.open(row.dataset.href, "_blank", "noopener");
  else window.location.assign(row.dataset.href);
});

// hx-confirm asks in our own <dialog> (base.html) rather than the browser's window.confirm.
document.addEventListener("htmx:confirm", (event) => {
  const question = event.detail.question;
  const dialog = document.getElementById("confirm-dialog");
  if (!question || !dialog || typeof dialog.showModal !== "function") return;  // let htmx ask as usual
  event.preventDefault();
  const button = event.detail.elt.querySelector("button[type=submit], button:not([type])");
  document.getElementById("confirm-message").textContent = question;
  const ok = document.getElementById("confirm-ok");
  ok.textContent = button ? button.firstChild.textContent.trim() : "Confirm";
  ok.className = button && button.classList.contains("danger") ? "danger-solid" : "primary";
  dialog.returnValue = "";
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "confirm") event.detail.issueRequest(true);
  }, { once: true });
  dialog.showModal();
});

// Toasts: an htmx answer with `HX-Trigger: {"toast": "…"}` shows (and announces) a short message.
document.body.addEventListener("toast", (event) => {
  const region = document.getElementById("toasts");
  if (!region) return;
  const toast = document.createElement("p");
  toast.className = "toast";
  toast.textContent = event.detail.value;
  region.append(toast);
  setTimeout(() => toast.remove(), 4000);
});

// The live delivery log (templates/deliveries/_live.html). Each poll answers with out-of-band swaps
// only: new rows prepended to the table, changed rows replacing their own row by id, and the poller
// itself with its next token. Before htmx swaps, this drops the changed rows that the page shows
// already in that very version (no flicker, and keyboard focus stays put), and puts a changed row
// that the page does not show yet (a change that committed late) in its place by id order.
document.addEventListener("htmx:beforeSwap", (event) => {
  const poller = event.detail.elt;
  if (!poller.matches || !poller.matches("[data-live-log]")) return;
  const rows = document.getElementById(poller.dataset.liveLog);
  if (!rows || !event.detail.xhr || event.detail.xhr.status !== 200) return;
  if (event.detail.xhr.getResponseHeader("HX-Retarget")) return;  // the whole log, afresh
  const response = document.createElement("template");
  response.innerHTML = event.detail.serverResponse;
  for (const group of response.content.querySelectorAll("template")) {
    for (const row of group.content.querySelectorAll("tr[hx-swap-oob]")) {
      const shown = document.getElementById(row.id);
      if (shown && shown.dataset.version === row.dataset.version) {
        row.remove();
      } else if (!shown) {
        row.remove();
        if (row.dataset.inFilter !== "0") insertInOrder(rows, row);
      }
    }
  }
  event.detail.serverResponse = response.innerHTML;
});

function insertInOrder(rows, row) {
  row.removeAttribute("hx-swap-oob");
  const older = Array.from(rows.querySelectorAll(":scope > tr[id]")).find((other) => other.id < row.id);
  rows.insertBefore(document.adoptNode(row), older || rows.querySelector(":scope > tr.empty-row"));
  if (window.htmx) window.htmx.process(row);
}

// Do not poll from a tab nobody looks at; catch up at once when it is shown again.
document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden && event.detail.elt.matches("[data-live-log], [data-live-detail]")) event.preventDefault();
});
document.addEventListener("visibilitychange", () => {
  if (document.hidden || !window.htmx) return;
  for (const poller of document.querySelectorAll("[data-live-log], [data-live-detail]")) window.htmx.trigger(poller, "refresh");
});

// Say so when the live log cannot reach the server; the poll keeps trying.
for (const [name, offline] of [["htmx:sendError", true], ["htmx:responseError", true], ["htmx:afterRequest", false]]) {
  document.addEventListener(name, (event) => {
    const poller = event.detail.elt;
    if (!poller.matches || !poller.matches("[data-live-log]")) return;
    if (name === "htmx:afterRequest" && !event.detail.successful) return;
    poller.classList.toggle("offline", offline);
  });
}
