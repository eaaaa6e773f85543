// Statements page: says when a statement being built is ready, through progress's watch() API.

import { watch } from "../progress/client.js";
import { isFinal, State } from "../progress/protocol.js";

function start(root) {
  const notice = root.querySelector("[data-live-notice]");
  for (const card of root.querySelectorAll("[data-statement-job]")) {
    const jobId = card.getAttribute("data-statement-job");
    if (!jobId) continue;
    const month = card.getAttribute("data-statement");
    watch(jobId, {
      onFinish(job) {
        // The page was open while it ran: news, unlike statements already done at load.
        if (!isFinal(job.state) || card.hasAttribute("data-done-at-load")) return;
        notice.textContent = job.state === State.SUCCESS ? `Your statement for ${month} is ready.` : `Your statement for ${month} ended ${job.state}.`;
      },
      onUpdate(job) {
        if (!card.hasAttribute("data-seen") && isFinal(job.state)) card.setAttribute("data-done-at-load", "");
        card.setAttribute("data-seen", "");
      },
    });
  }
}

const root = document.querySelector("[data-statements]");
if (root) start(root);
