// One line of a candidate-proctor conversation, as templates/_chat.html renders it.
// Lines carrying an id (stored messages) are added once, however often they arrive.
export function appendChatLine(log, { who, text, className, at, id }) {
  if (id != null && log.querySelector(`li[data-id="${id}"]`)) return;
  log.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  if (id != null) li.dataset.id = id;
  li.className = className;
  const whoEl = document.createElement("span");
  whoEl.className = "who";
  whoEl.textContent = who;
  const time = document.createElement("time");
  time.className = "muted";
  const when = at ? new Date(at) : new Date();
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString();
  const textEl = document.createElement("span");
  textEl.className = "text";
  textEl.textContent = text;
  li.append(whoEl, time, textEl);
  log.append(li);
  log.scrollTop = log.scrollHeight;
}
