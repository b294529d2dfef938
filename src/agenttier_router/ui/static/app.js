// AgentTier Router pages: the little behaviour they need, and no more.
// Served from this Router (CSP script-src 'self'); nothing here builds HTML from data:
// fragments are rendered, escaped, by the server.
"use strict";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.title = "Local time: " + when.toLocaleString();
  }
}

async function expand(button) {
  const more = document.getElementById(button.getAttribute("aria-controls"));
  if (!more) return;
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  more.hidden = !open;
  const slot = more.querySelector(".timeline-slot");
  if (open && slot && !slot.dataset.loaded && button.dataset.timeline) {
    slot.dataset.loaded = "1";
    try {
      const response = await fetch(button.dataset.timeline, {credentials: "same-origin"});
      if (!response.ok) throw new Error("HTTP " + response.status);
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fragment = doc.querySelector("main") || doc.body;
      slot.replaceChildren(...fragment.childNodes);
      localTimes(slot);
    } catch (error) {
      slot.textContent = "Could not load the timeline: " + error.message;
    }
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.expand");
  if (button) expand(button);
});

document.addEventListener("DOMContentLoaded", () => localTimes(document));
