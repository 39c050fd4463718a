// One candidate's page for a proctor: new lines of the conversation appear
// live, from the exam's proctor socket, without a reload.
import { appendChatLine } from "./chat.js";
import { openSocket } from "./socket.js";

const root = document.getElementById("proctor-session");
const log = document.getElementById("chat-log");

openSocket(root.dataset.wsPath, {
  onOpen: () => { root.dataset.live = "1"; },
  onClose: () => { delete root.dataset.live; },
  onMessage: (msg) => {
    if (msg.type === "chat" && msg.message.session === root.dataset.session) appendChatLine(log, msg.message);
  },
});
