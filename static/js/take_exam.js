// The exam page: streams one JPEG frame per interval over a websocket and
// reports integrity signals. Reconnects with backoff if the network drops; the
// tab's resume id lets the server hand the session back to this tab even while
// its old connection still looks open there.
import { startCamera, captureJpeg, cameraErrorMessage } from "./camera.js";
import { appendChatLine } from "./chat.js";
import { openSocket } from "./socket.js";

const root = document.getElementById("exam");
const video = document.getElementById("selfview");
const conn = document.getElementById("conn");
const notice = document.getElementById("notice");
const pausedOverlay = document.getElementById("paused");
let intervalMs = Math.max(500, parseFloat(root.dataset.interval) * 1000);
let frameTimer = null;

// One id per browser tab, kept across reloads of the tab (sessionStorage).
function resumeId() {
  const key = `resume:${root.dataset.wsPath}`;
  let id = sessionStorage.getItem(key);
  if (!id) {
    id = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
    sessionStorage.setItem(key, id);
  }
  return id;
}

// The server asks for fewer frames while it is short of capacity, and for the
// exam's own pace again once it keeps up.
function streamEvery(seconds) {
  const ms = Math.max(500, seconds * 1000);
  if (ms === intervalMs && frameTimer !== null) return;
  intervalMs = ms;
  if (frameTimer !== null) clearInterval(frameTimer);
  frameTimer = setInterval(sendFrame, intervalMs);
}

let socket = null;
let finished = false;
let paused = false;

function say(text, kind = "warn") {
  delete notice.dataset.code;
  notice.textContent = text;
  notice.className = `msg ${kind}`;
  notice.hidden = false;
}

function send(obj) {
  return socket !== null && socket.send(obj);
}

// The conversation with the proctors. Every line, the candidate's own included,
// arrives as a "chat" message once the server has stored it; until then the text
// stays in the box, so a refused or unsent message is never lost.
const chatLog = document.getElementById("chat-log");
const chatText = document.getElementById("chat-text");

document.getElementById("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = chatText.value.trim();
  if (!text) return;
  if (!send({ type: "chat", text })) say("Not connected right now. Your message is kept; send it again once connected.", "error");
});

function onMessage(msg) {
  if (msg.type === "status") {
    paused = msg.paused;
    pausedOverlay.hidden = !paused;
    if (msg.interval) streamEvery(msg.interval);
    if (notice.dataset.code === "duplicate_session" || notice.dataset.code === "unavailable") notice.hidden = true;
  } else if (msg.type === "error") {
    say(msg.message, "error");
    notice.dataset.code = msg.code;
    if (msg.fatal) { finished = true; conn.textContent = "Not connected"; }
    else if (msg.code === "duplicate_session") conn.textContent = "Waiting for the other tab or device to close…";
  } else if (msg.type === "warn") say(`Proctor: ${msg.text}`, "warn");
  else if (msg.type === "message") say(`Proctor: ${msg.text}`, "info");
  else if (msg.type === "chat") appendChatLine(chatLog, msg.message);
  else if (msg.type === "chat_ack") { if (chatText.value.trim() === msg.message.text) chatText.value = ""; }
  else if (msg.type === "pause") { paused = true; pausedOverlay.hidden = false; }
  else if (msg.type === "resume") { paused = false; pausedOverlay.hidden = true; }
  else if (msg.type === "ended") {
    finished = true;
    say(msg.text || "Your exam has ended.", "info");
    setTimeout(() => (window.location.href = root.dataset.doneUrl), 1500);
  }
}

function connect() {
  socket = openSocket(`${root.dataset.wsPath}?resume=${encodeURIComponent(resumeId())}`, {
    binaryType: "arraybuffer",
    onOpen: () => { conn.textContent = "Connected"; },
    onMessage,
    onClose: (ev) => { if (ev.code !== 4409) conn.textContent = "Connection lost, reconnecting…"; },
    // After a fatal error or the end of the exam, a new connection would be refused.
    reconnect: () => !finished,
  });
}

async function sendFrame() {
  if (finished || paused || !socket?.isOpen || video.readyState < 2) return;
  // Drop the frame rather than queue it if the network is slow.
  if (socket.bufferedAmount > 256 * 1024) return;
  const blob = await captureJpeg(video, 0.7);
  socket.send(await blob.arrayBuffer());
}

document.addEventListener("visibilitychange", () => send({ type: "signal", name: "tab_hidden", active: document.hidden }));
document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement) send({ type: "signal", name: "fullscreen_exit", active: true });
  else send({ type: "signal", name: "fullscreen_exit", active: false });
});
for (const kind of ["copy", "paste", "cut"]) document.addEventListener(kind, () => send({ type: "signal", name: "copy_paste", active: true }));
// Stop streaming but keep the socket open: the page unloads (and closes it) only
// after the server has recorded the submission, so finishing is never
// mistaken for a lost connection.
document.getElementById("finish-form").addEventListener("submit", () => { finished = true; });

startCamera(video)
  .then(() => {
    connect();
    streamEvery(intervalMs / 1000);
    setInterval(() => send({ type: "heartbeat" }), 5000);
  })
  .catch((err) => say(cameraErrorMessage(err), "error"));
