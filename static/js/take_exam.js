// The exam page: streams one JPEG frame per interval over a websocket and
// reports integrity signals. Reconnects with backoff if the network drops; the
// tab's resume id lets the server hand the session back to this tab even while
// its old connection still looks open there.
import { startCamera, captureJpeg, cameraErrorMessage } from "./camera.js";
import { appendChatLine } from "./chat.js";
import { openSocket } from "./socket.js";
import { formatLeft, startCountdown } from "./countdown.js";
import { formatClock, showClock } from "./clock.js";

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
// exam's own pace again once it keeps up. That pace is one for the whole
// server, so pages hear of a change one after another; restarting every
// page's timer at its pace lined a whole exam hall up to send within the same
// half second. So each frame comes up to FRAME_JITTER of the pace early or
// late, at random, and a new pace re-times the next frame from the last one.
const FRAME_JITTER = 0.15;
let lastFrameAt = null; // performance.now() when the last frame was due

function frameDelay() {
  return intervalMs * (1 + FRAME_JITTER * (2 * Math.random() - 1));
}

function scheduleFrame() {
  if (frameTimer !== null) clearTimeout(frameTimer);
  const due = (lastFrameAt ?? performance.now()) + frameDelay();
  frameTimer = setTimeout(frameDue, Math.max(0, due - performance.now()));
}

function frameDue() {
  frameTimer = null;
  lastFrameAt = performance.now();
  scheduleFrame();
  sendFrame();
}

function streamEvery(seconds) {
  const ms = Math.max(500, seconds * 1000);
  if (ms === intervalMs && frameTimer !== null) return;
  intervalMs = ms;
  scheduleFrame();
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
    if (msg.deadline) moveDeadline(msg.deadline);
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
  else if (msg.type === "deadline") {
    if (moveDeadline(msg.deadline)) say(`Your time was extended: the exam now ends at ${formatClock(msg.deadline)}.`, "info");
  }
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
for (const kind of ["copy", "paste", "cut"]) document.addEventListener(kind, () => send({ type: "signal", name: "copy_paste", active: true }));

// Finishing asks first, in a <dialog>. Confirmed, the form posts for real; the
// page stops streaming but keeps the socket open until it unloads, after the
// server has recorded the submission, so finishing is never mistaken for a
// lost connection.
const finishForm = document.getElementById("finish-form");
const finishDialog = document.getElementById("finish-dialog");
const finishTime = document.getElementById("finish-time");

function submitFinish() {
  finished = true;
  if (finishDialog.open) finishDialog.close();
  finishForm.submit();
}

finishForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (countdown) finishTime.textContent = `You still have ${formatLeft(countdown.secondsLeft())} left.`;
  finishDialog.showModal();
});
document.getElementById("finish-cancel").addEventListener("click", () => finishDialog.close());
document.getElementById("finish-confirm").addEventListener("click", submitFinish);

// The countdown follows the server's deadline (extra time arrives as a
// "deadline" message). At zero the server submits the exam; the page posts
// too, which the server treats as a no-op if it already has.
const timerText = document.getElementById("timer");
const timerBox = document.getElementById("timer-box");
const timeWarning = document.getElementById("time-warning");

// The deadline is one value: the countdown, the "Your exam ends at" line and the
// extra-time notice all show it, and move together when it moves.
const deadlineAt = document.getElementById("deadline-at");

function moveDeadline(iso) {
  if (!countdown?.setDeadline(iso)) return false;
  root.dataset.deadline = iso;
  if (deadlineAt) showClock(deadlineAt, iso, "time");
  return true;
}

const countdown = root.dataset.deadline ? startCountdown({
  deadlineIso: root.dataset.deadline,
  serverNowIso: root.dataset.serverNow,
  onTick: (left) => {
    timerText.textContent = formatLeft(left);
    timerBox.classList.toggle("timer-low", left <= 5 * 60);
    timerBox.classList.toggle("timer-urgent", left <= 60);
    if (left > 5 * 60) timeWarning.hidden = true;
  },
  onWarn: (text) => { timeWarning.textContent = text; timeWarning.hidden = false; },
  onZero: () => {
    if (finished) return;
    timeWarning.textContent = "Time is up. Your exam is being submitted.";
    timeWarning.hidden = false;
    submitFinish();
  },
}) : null;

// Full screen, when the exam asks for it. Browsers only enter full screen on a
// click, so the page asks with a button, at the start and again after each exit
// (the exit itself is reported to the proctor as a signal).
const fullscreenPrompt = document.getElementById("fullscreen-prompt");
const fullscreenText = document.getElementById("fullscreen-text");

function askFullscreen(again) {
  if (!fullscreenPrompt || finished) return;
  if (again) fullscreenText.textContent = "You left full screen, and the proctor was told. Go back to full screen to continue the exam.";
  fullscreenPrompt.hidden = false;
  document.getElementById("fullscreen-enter").focus();
}

if (fullscreenPrompt) {
  if (!document.fullscreenEnabled) {
    say("This exam asks for full screen, but this browser cannot go full screen. Keep this tab in front; leaving it is reported.", "warn");
  } else if (!document.fullscreenElement) {
    askFullscreen(false);
  }
  document.getElementById("fullscreen-enter").addEventListener("click", () => {
    document.documentElement.requestFullscreen()
      .then(() => { fullscreenPrompt.hidden = true; })
      .catch((err) => { fullscreenText.textContent = `Full screen was refused (${err.message}). Try the button again.`; });
  });
}

document.addEventListener("fullscreenchange", () => {
  const inside = Boolean(document.fullscreenElement);
  send({ type: "signal", name: "fullscreen_exit", active: !inside });
  if (!fullscreenPrompt) return;
  if (inside) fullscreenPrompt.hidden = true;
  else askFullscreen(true);
});

startCamera(video)
  .then(() => {
    connect();
    streamEvery(intervalMs / 1000);
    setInterval(() => send({ type: "heartbeat" }), 5000);
  })
  .catch((err) => say(cameraErrorMessage(err), "error"));
