// One line of a candidate-proctor conversation, as templates/_chat.html renders it,
// from a "chat" message of the socket: the server labels the speaker for the reader.
// Lines are added once, however often they arrive.
import { clockElement } from "./clock.js";

export function appendChatLine(log, { id, sender, kind, speaker, text, at }) {
  if (log.querySelector(`li[data-id="${id}"]`)) return;
  log.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.dataset.id = id;
  li.className = `chat-${sender}${kind === "warn" ? " chat-warn" : ""}`;
  const whoEl = document.createElement("span");
  whoEl.className = "who";
  whoEl.textContent = speaker;
  const time = clockElement(at, "time", "muted");
  const textEl = document.createElement("span");
  textEl.className = "text";
  textEl.textContent = text;
  li.append(whoEl, time, textEl);
  log.append(li);
  log.scrollTop = log.scrollHeight;
}
