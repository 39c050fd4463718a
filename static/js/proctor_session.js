// One candidate's page for a proctor, live from the exam's proctor socket:
// the picture, the state, the deadline and the timeline update in place, and
// new lines of the conversation appear, without a reload. Ending the exam asks first.
import { appendChatLine } from "./chat.js";
import { clockElement, formatClock, showClock } from "./clock.js";
import { confirmSubmits } from "./confirm.js";
import { openSocket } from "./socket.js";

const root = document.getElementById("proctor-session");
const log = document.getElementById("chat-log");
const picture = document.getElementById("session-picture");
const noPicture = document.getElementById("session-no-picture");
const timeline = document.getElementById("timeline");
const last = document.getElementById("session-last");
let lastFrameAt = last.dataset.at || null;

function time(iso) { return formatClock(iso, "time"); }

// The full frame comes over HTTP (204 while there is none): show it once it loaded.
picture.addEventListener("load", () => { picture.hidden = false; noPicture.hidden = true; });
picture.addEventListener("error", () => { picture.hidden = true; noPicture.hidden = false; });
function refreshPicture() { picture.src = `${root.dataset.picture}?at=${Date.now()}`; }
if (lastFrameAt) refreshPicture();

function showWhen(span) {
  const { started, ended, open } = span.dataset;
  span.textContent = `${time(started)}–${time(ended)}${open ? " (ongoing)" : ""}`;
}
timeline.querySelectorAll(".when").forEach(showWhen);

function updateSession(session) {
  const state = document.getElementById("session-state");
  state.textContent = session.state_label;
  state.className = `state state-${session.state}`;
  root.dataset.state = session.state;
  document.getElementById("session-paused").hidden = !session.paused;
  document.getElementById("session-frames").textContent = session.frames_analysed;
  const deadline = document.getElementById("session-deadline");
  if (deadline && session.deadline && Date.parse(deadline.dateTime) !== Date.parse(session.deadline)) {
    showClock(deadline, session.deadline, "time");
  }
  if (session.last_frame_at && session.last_frame_at !== lastFrameAt) {
    lastFrameAt = session.last_frame_at;
    last.replaceChildren(clockElement(lastFrameAt, "time"));
    if (session.thumbnail || picture.hidden) refreshPicture();
  }
}

function updateEvent(event) {
  timeline.querySelector(".empty")?.remove();
  let li = document.getElementById(`event-${event.id}`);
  if (!li) {
    li = document.createElement("li");
    li.id = `event-${event.id}`;
    timeline.append(li);
  }
  li.className = `event sev-${event.severity}`;
  const head = document.createElement("div");
  head.className = "event-head";
  const label = document.createElement("strong");
  label.className = "etype";
  label.textContent = event.label;
  const pill = document.createElement("span");
  pill.className = `pill sev-${event.severity}`;
  pill.textContent = event.severity;
  const when = document.createElement("span");
  when.className = "muted when";
  Object.assign(when.dataset, { started: event.started_at, ended: event.ended_at, open: event.open ? "1" : "" });
  showWhen(when);
  head.append(label, pill, when);
  if (event.acknowledged_by) {
    const by = document.createElement("span");
    by.className = "handled-by";
    by.textContent = `handled by ${event.acknowledged_by}`;
    head.append(by);
  }
  li.replaceChildren(head);
}

confirmSubmits(root);

openSocket(root.dataset.wsPath, {
  onOpen: () => { root.dataset.live = "1"; },
  onClose: () => { delete root.dataset.live; },
  onMessage: (msg) => {
    const mine = root.dataset.session;
    if (msg.type === "snapshot" || msg.type === "sessions") {
      msg.sessions.filter((s) => s.id === mine).forEach(updateSession);
      if (msg.type === "snapshot") (msg.feed || []).forEach((e) => e.type === "event" && e.event.session === mine && updateEvent(e.event));
    } else if (msg.type === "event" && msg.event.session === mine) updateEvent(msg.event);
    else if (msg.type === "chat" && msg.message.session === mine) appendChatLine(log, msg.message);
  },
});
