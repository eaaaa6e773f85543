// Job logs: the lines of one job, kept once each by their `n`, drawn as a console.

// Lines a page keeps per job; the server keeps its own newest lines too.
export const MAX_LINES = 1000;

export class LogStore {
  #lines = new Map();
  #last = 0;

  // A replay and live batches can overlap or come in either order, so each
  // line is kept once by its number and the lines are always shown in order.
  // Returns the lines that were new, and whether they all came after the others.
  apply(lines) {
    const added = [];
    if (!Array.isArray(lines)) return { added, inOrder: true };
    let inOrder = true;
    for (const line of lines) {
      if (!line || !Number.isInteger(line.n) || this.#lines.has(line.n)) continue;
      if (line.n < this.#last) inOrder = false;
      this.#last = Math.max(this.#last, line.n);
      this.#lines.set(line.n, line);
      added.push(line);
    }
    while (this.#lines.size > MAX_LINES) {
      this.#lines.delete(Math.min(...this.#lines.keys()));
      inOrder = false;
    }
    added.sort((a, b) => a.n - b.n);
    return { added, inOrder };
  }

  lines() {
    return [...this.#lines.values()].sort((a, b) => a.n - b.n);
  }

  get size() {
    return this.#lines.size;
  }
}

function lineNode(doc, line) {
  const item = doc.createElement("li");
  item.setAttribute("data-n", String(line.n));
  item.setAttribute("data-level", String(line.level ?? ""));
  const level = doc.createElement("span");
  level.className = "log-level";
  level.textContent = String(line.level ?? "");
  const text = doc.createElement("span");
  text.className = "log-text";
  // Log text is whatever task code wrote: text only.
  text.textContent = String(line.text ?? "");
  item.append(level, " ", text);
  return item;
}

// Appends new lines, or redraws when some came out of order; keeps the view
// pinned to the bottom while the reader is there, like a console.
export function renderLog(list, store, { added, inOrder }) {
  if (!added.length && inOrder) return;
  const doc = list.ownerDocument;
  const pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  if (inOrder) list.append(...added.map((line) => lineNode(doc, line)));
  else list.replaceChildren(...store.lines().map((line) => lineNode(doc, line)));
  if (pinned) list.scrollTop = list.scrollHeight;
}
