// The proctors' live grid: tiles and their thumbnails update from the websocket
// (batched by the server, pictures pushed, no polling), alerts and candidates'
// messages stream into the feed. No page reloads.
// Links, labels and the socket's path all come from the server.
import { openSocket } from "./socket.js";

const root = document.getElementById("live");
const grid = document.getElementById("grid");
const feed = document.getElementById("feed");
const status = document.getElementById("live-status");

function tileFor(session) {
  let tile = document.getElementById(`tile-${session.id}`);
  if (tile) return tile;
  tile = document.createElement("a");
  tile.className = "tile";
  tile.id = `tile-${session.id}`;
  tile.dataset.session = session.id;
  tile.href = session.url;
  tile.innerHTML = `<div class="thumb"><img alt=""></div><div class="tile-body"><strong class="name"></strong><span class="state"></span><div class="badges"></div></div>`;
  grid.appendChild(tile);
  return tile;
}

function updateTile(session) {
  const tile = tileFor(session);
  tile.querySelector(".name").textContent = session.candidate;
  const img = tile.querySelector("img");
  img.alt = `Latest picture of ${session.candidate}`;
  if (session.thumbnail) img.src = session.thumbnail;
  const state = tile.querySelector(".state");
  state.textContent = session.state_label + (session.paused ? " · paused" : "");
  state.className = `state state-${session.state}`;
  const badges = tile.querySelector(".badges");
  badges.replaceChildren(...session.open_flags.map((flag) => {
    const b = document.createElement("span");
    b.className = "pill sev-high";
    b.textContent = flag.replace(/_/g, " ");
    return b;
  }));
  tile.classList.toggle("alert", session.open_flags.length > 0);
}

function addAlert(event) {
  feed.querySelector(".empty")?.remove();
  const id = `alert-${event.id}`;
  let li = document.getElementById(id);
  if (!li) {
    li = document.createElement("li");
    li.id = id;
    li.dataset.type = event.type;
    feed.prepend(li);
  }
  const time = new Date(event.started_at).toLocaleTimeString();
  li.replaceChildren(...feedParts({
    pillClass: `pill sev-${event.severity}`, label: event.type, href: event.session_url,
    candidate: event.candidate, when: `${time}${event.open ? " (ongoing)" : ""}`,
  }));
}

// A candidate's message: into the feed, like an alert, with its text.
function addChat(message) {
  if (message.sender !== "candidate") return;
  feed.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.className = "chat";
  li.id = `chat-${message.id}`;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  li.append(...feedParts({
    pillClass: "pill", label: "message", href: `${message.session_url}#chat`,
    candidate: message.candidate, when: new Date(message.at).toLocaleTimeString(),
  }), text);
  feed.prepend(li);
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

openSocket(root.dataset.wsPath, {
  onOpen: () => { status.textContent = "live"; status.className = "pill review-dismissed"; },
  onClose: () => { status.textContent = "reconnecting…"; status.className = "pill sev-medium"; },
  onMessage: (msg) => {
    if (msg.type === "snapshot" || msg.type === "sessions") msg.sessions.forEach(updateTile);
    else if (msg.type === "event") addAlert(msg.event);
    else if (msg.type === "chat") addChat(msg.message);
  },
});
