// The proctors' live grid: tiles and their thumbnails update from the websocket
// (batched by the server, pictures pushed, no polling), alerts and candidates'
// messages stream into the feed. No page reloads.
// Links, labels and the socket's path all come from the server.
//
// For an exam of 100-200 candidates the grid sorts (by attention or name),
// filters, searches and shrinks its tiles; the counts bar sums it up. Alerts
// beep (WebAudio, a toggle kept in localStorage), count in the title while the
// page is out of sight and, if the proctor opts in, raise desktop notifications.
// window.gridStats holds how long each batch took to draw (for manage.py grid_bench).
import { formatClock } from "./clock.js";
import { confirmSubmits } from "./confirm.js";
import { openSocket } from "./socket.js";

const root = document.getElementById("live");
const grid = document.getElementById("grid");
const feed = document.getElementById("feed");
const status = document.getElementById("live-status");
const search = document.getElementById("grid-search");
const sortBy = document.getElementById("grid-sort");
const filterBy = document.getElementById("grid-filter");
const compactButton = document.getElementById("grid-compact");
const soundButton = document.getElementById("grid-sound");
const notifyButton = document.getElementById("grid-notify");
const noneShown = document.getElementById("none-shown");
const csrf = document.querySelector("#exam-actions [name=csrfmiddlewaretoken]")?.value;
const baseTitle = document.title;

const FINISHED = new Set(["submitted", "terminated", "cleared", "violation"]);
const FEED_LIMIT = 200; // entries kept in the feed; older ones drop off the end
const sessions = new Map(); // id -> the latest tile payload (without its picture)
const alerts = new Map(); // id -> the latest alert payload
let unseen = 0;

// What the bench reads: the time each batch of tile updates took to apply.
const stats = { batches: 0, tiles: 0, totalMs: 0, maxMs: 0, recentMs: [] };
window.gridStats = stats;

function stored(key, fallback) {
  try { return localStorage.getItem(key) ?? fallback; } catch { return fallback; }
}
function store(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: not remembered */ }
}

// ---- tiles ---------------------------------------------------------------

function tileFor(session) {
  let tile = document.getElementById(`tile-${session.id}`);
  if (tile) return tile;
  tile = document.createElement("a");
  tile.className = "tile";
  tile.id = `tile-${session.id}`;
  tile.dataset.session = session.id;
  tile.href = session.url;
  tile.innerHTML = `<div class="thumb"><img alt="" hidden><span class="no-picture">No picture yet</span><span class="age"></span></div><div class="tile-body"><strong class="name"></strong><span class="state"></span><span class="why"></span><div class="badges"></div></div>`;
  grid.insertBefore(tile, noneShown);
  return tile;
}

function updateTile(session) {
  const tile = tileFor(session);
  const { thumbnail, ...data } = session;
  sessions.set(session.id, data);
  tile.dataset.name = session.candidate.toLowerCase();
  tile.querySelector(".name").textContent = session.candidate;
  const img = tile.querySelector("img");
  img.alt = `Latest picture of ${session.candidate}`;
  if (thumbnail) {
    img.src = thumbnail;
    img.hidden = false;
    tile.querySelector(".no-picture").hidden = true;
  }
  const state = tile.querySelector(".state");
  const offline = session.state === "in_progress" && !session.connected;
  state.textContent = session.state_label + (session.paused ? " · paused" : "");
  state.className = `state state-${session.state}`;
  tile.querySelector(".why").textContent = session.waiting || (offline ? "Disconnected" : "");
  const badges = tile.querySelector(".badges");
  badges.replaceChildren(...session.open_flags.map((flag) => {
    const b = document.createElement("span");
    b.className = flag.acknowledged ? "pill handled" : "pill sev-high";
    b.textContent = flag.label;
    if (flag.acknowledged) b.title = "handled";
    return b;
  }));
  tile.classList.toggle("alert", session.open_flags.some((flag) => !flag.acknowledged));
  tile.classList.toggle("offline", offline);
  showAge(tile, data);
}

// "12 s ago": how old the tile's picture is, kept current by a once-a-second tick.
function ageText(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

function showAge(tile, session) {
  const age = tile.querySelector(".age");
  const text = session.state === "in_progress" ? ageText(session.last_frame_at) : "";
  if (age.textContent !== text) age.textContent = text;
  age.classList.toggle("stale", text !== "" && Date.now() - Date.parse(session.last_frame_at) > 30_000);
}

setInterval(() => {
  for (const session of sessions.values()) {
    const tile = document.getElementById(`tile-${session.id}`);
    if (tile) showAge(tile, session);
  }
}, 1000);

// ---- sort, filter, search, counts ----------------------------------------

function matches(session) {
  const query = search.value.trim().toLowerCase();
  if (query && !session.candidate.toLowerCase().includes(query)) return false;
  const filter = filterBy.value;
  if (filter === "flagged") return session.open_flags.length > 0;
  if (filter === "disconnected") return session.state === "in_progress" && !session.connected;
  if (filter.startsWith("state:")) return session.state === filter.slice(6);
  return true;
}

function byName(a, b) {
  return a.candidate.localeCompare(b.candidate) || a.id.localeCompare(b.id);
}

// Open high alerts nobody handled yet, then the risk score, then the name.
function byAttention(a, b) {
  return (b.open_high - a.open_high) || (b.risk - a.risk) || byName(a, b);
}

function arrange() {
  const ordered = [...sessions.values()].sort(sortBy.value === "name" ? byName : byAttention);
  const tiles = ordered.map((s) => document.getElementById(`tile-${s.id}`));
  const current = grid.querySelectorAll(".tile");
  if (tiles.some((tile, i) => current[i] !== tile)) grid.prepend(...tiles);
  let shown = 0;
  const counts = { in_progress: 0, flagged: 0, disconnected: 0, finished: 0 };
  for (const session of ordered) {
    const visible = matches(session);
    const tile = document.getElementById(`tile-${session.id}`);
    if (tile.hidden === visible) tile.hidden = !visible;
    shown += visible ? 1 : 0;
    if (session.state === "in_progress") counts.in_progress += 1;
    if (session.open_flags.length) counts.flagged += 1;
    if (session.state === "in_progress" && !session.connected) counts.disconnected += 1;
    if (FINISHED.has(session.state)) counts.finished += 1;
  }
  Object.assign(counts, { shown, total: sessions.size });
  for (const el of document.querySelectorAll("#counts [data-count]")) {
    const text = String(counts[el.dataset.count]);
    if (el.textContent !== text) el.textContent = text;
  }
  noneShown.hidden = shown > 0 || sessions.size === 0;
}

function applyTiles(list) {
  const started = performance.now();
  list.forEach(updateTile);
  arrange();
  // Reading a layout property makes the browser do the style and layout work
  // now, inside the measurement, instead of at the next frame.
  void grid.offsetHeight;
  const ms = performance.now() - started;
  stats.batches += 1;
  stats.tiles += list.length;
  stats.totalMs += ms;
  stats.maxMs = Math.max(stats.maxMs, ms);
  stats.recentMs.push(ms);
  if (stats.recentMs.length > 5000) stats.recentMs.shift();
}

search.addEventListener("input", arrange);
sortBy.addEventListener("change", arrange);
filterBy.addEventListener("change", arrange);

function setCompact(on) {
  grid.classList.toggle("compact", on);
  compactButton.setAttribute("aria-pressed", String(on));
  store("grid.compact", on ? "1" : "0");
}
compactButton.addEventListener("click", () => setCompact(!grid.classList.contains("compact")));
setCompact(stored("grid.compact", "0") === "1");

// ---- alerts: sound, title, desktop notifications ---------------------------

let audio = null;
function soundOn() { return soundButton.getAttribute("aria-pressed") === "true"; }
function setSound(on) {
  soundButton.setAttribute("aria-pressed", String(on));
  soundButton.textContent = on ? "Sound on" : "Sound off";
  store("grid.sound", on ? "1" : "0");
}
soundButton.addEventListener("click", () => setSound(!soundOn()));
setSound(stored("grid.sound", "1") === "1");

// Browsers start audio only after a gesture on the page: the first click or key makes the context.
function unlockAudio() {
  if (!audio && window.AudioContext) audio = new AudioContext();
  audio?.resume();
}
document.addEventListener("pointerdown", unlockAudio, { once: true });
document.addEventListener("keydown", unlockAudio, { once: true });

// A short two-tone beep, made on the spot: no audio file.
function beep() {
  if (!soundOn() || !audio || audio.state !== "running") return;
  const start = audio.currentTime;
  for (const [offset, frequency] of [[0, 880], [0.18, 660]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.15);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.16);
  }
  window.gridBeeps = (window.gridBeeps || 0) + 1;
}

function inSight() { return document.visibilityState === "visible" && document.hasFocus(); }
function showUnseen() { document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle; }
function seen() { if (inSight()) { unseen = 0; showUnseen(); } }
document.addEventListener("visibilitychange", seen);
window.addEventListener("focus", seen);

if ("Notification" in window) {
  const label = () => {
    const granted = Notification.permission === "granted" && stored("grid.notify", "0") === "1";
    notifyButton.textContent = granted ? "Desktop alerts on" : "Desktop alerts";
    notifyButton.setAttribute("aria-pressed", String(granted));
    return granted;
  };
  notifyButton.hidden = Notification.permission === "denied";
  label();
  notifyButton.addEventListener("click", async () => {
    if (label()) { store("grid.notify", "0"); label(); return; }
    const answer = await Notification.requestPermission();
    store("grid.notify", answer === "granted" ? "1" : "0");
    notifyButton.hidden = answer === "denied";
    label();
  });
}

function notify(event) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (stored("grid.notify", "0") !== "1" || inSight()) return;
  const note = new Notification(`${event.candidate}: ${event.label}`, { tag: event.id, body: `${event.severity} alert` });
  note.onclick = () => { window.focus(); location.href = event.session_url; };
}

// A new alert that nobody handled yet, told as it happens (not when replayed from the snapshot).
function announce(event) {
  if (event.acknowledged_by || event.severity === "low") return;
  beep();
  notify(event);
  if (!inSight()) { unseen += 1; showUnseen(); }
}

// ---- the feed --------------------------------------------------------------

function trimFeed() {
  while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
}

function addAlert(event, { live }) {
  feed.querySelector(".empty")?.remove();
  const isNew = !alerts.has(event.id);
  alerts.set(event.id, event);
  const id = `alert-${event.id}`;
  let li = document.getElementById(id);
  if (!li) {
    li = document.createElement("li");
    li.id = id;
    feed.prepend(li);
  }
  li.dataset.type = event.type;
  // An alert that ended says so here too (its end is pushed like its start).
  li.dataset.open = String(event.open);
  li.className = event.acknowledged_by ? "handled" : "";
  const time = formatClock(event.started_at, "time");
  // Repeats of one cause are one alert: how many times, not one line each.
  const count = Number(event.details?.count || 1);
  const repeats = count > 1 ? ` · ${count} times` : "";
  const parts = feedParts({
    pillClass: `pill sev-${event.severity}`, label: event.label, href: event.session_url,
    candidate: event.candidate, when: `${time}${event.open ? " (ongoing)" : ""}${repeats}`,
  });
  if (event.acknowledged_by) {
    const by = document.createElement("span");
    by.className = "handled-by";
    by.textContent = `handled by ${event.acknowledged_by}`;
    parts.push(by);
  } else if (event.severity !== "low") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ack";
    button.textContent = "Acknowledge";
    button.setAttribute("aria-label", `Acknowledge ${event.label} of ${event.candidate}`);
    button.addEventListener("click", () => acknowledge(event, button));
    parts.push(button);
  }
  li.replaceChildren(...parts);
  trimFeed();
  if (live && isNew) announce(event);
}

async function acknowledge(event, button) {
  button.disabled = true;
  try {
    const response = await fetch(event.ack_url, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    addAlert((await response.json()).event, { live: false });
  } catch {
    button.disabled = false;
    button.textContent = "Acknowledge (failed, try again)";
  }
}

// A candidate's message: into the feed, like an alert, with its text.
function addChat(message) {
  if (message.sender !== "candidate" || document.getElementById(`chat-${message.id}`)) return;
  feed.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.className = "chat";
  li.id = `chat-${message.id}`;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  li.append(...feedParts({
    pillClass: "pill", label: "message", href: `${message.session_url}#chat`,
    candidate: message.candidate, when: formatClock(message.at, "time"),
  }), text);
  feed.prepend(li);
  trimFeed();
}

// What every feed entry starts with: a pill, the candidate's link and the time.
function feedParts({ pillClass, label, href, candidate, when }) {
  const pill = document.createElement("span");
  pill.className = pillClass;
  pill.textContent = label;
  const link = document.createElement("a");
  link.href = href;
  link.textContent = candidate;
  const time = document.createElement("span");
  time.className = "muted";
  time.textContent = when;
  return [pill, link, time];
}

function replayFeed(entries) {
  for (const entry of entries) {
    if (entry.type === "event") addAlert(entry.event, { live: false });
    else if (entry.type === "chat") addChat(entry.message);
  }
}

confirmSubmits(document.getElementById("exam-actions"));

openSocket(root.dataset.wsPath, {
  onOpen: () => { status.textContent = "live"; status.className = "pill review-dismissed"; },
  onClose: () => { status.textContent = "reconnecting…"; status.className = "pill sev-medium"; },
  onMessage: (msg) => {
    if (msg.type === "snapshot") {
      applyTiles(msg.sessions);
      replayFeed(msg.feed || []);
    } else if (msg.type === "sessions") applyTiles(msg.sessions);
    else if (msg.type === "event") addAlert(msg.event, { live: true });
    else if (msg.type === "chat") addChat(msg.message);
  },
});
