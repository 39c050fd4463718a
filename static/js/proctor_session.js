// One candidate's page for a proctor: new lines of the conversation appear
// live, from the exam's proctor socket, without a reload.
import { appendChatLine } from "./chat.js";

const root = document.getElementById("proctor-session");
const log = document.getElementById("chat-log");
let backoff = 1000;

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${proto}://${location.host}${root.dataset.wsPath}`);
  socket.addEventListener("open", () => { backoff = 1000; root.dataset.live = "1"; });
  socket.addEventListener("message", (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type !== "chat" || msg.message.session !== root.dataset.session) return;
    const m = msg.message;
    const warn = m.kind === "warn";
    appendChatLine(log, {
      id: m.id,
      at: m.at,
      text: m.text,
      who: m.sender === "candidate" ? m.candidate : `Proctor ${m.author}${warn ? " (warning)" : ""}`,
      className: `chat-${m.sender}${warn ? " chat-warn" : ""}`,
    });
  });
  socket.addEventListener("close", () => {
    delete root.dataset.live;
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  });
}

connect();
