// A websocket that reconnects by itself, shared by every page that listens live.
// Waits grow exponentially (1 s, 2 s, 4 s … up to 15 s) and each is jittered to
// between half and all of its step, so a server restart is not met by every
// open page reconnecting in the same instant.
const FIRST_WAIT_MS = 1000;
const LONGEST_WAIT_MS = 15000;

export function reconnectDelay(attempt) {
  const step = Math.min(FIRST_WAIT_MS * 2 ** attempt, LONGEST_WAIT_MS);
  return step / 2 + Math.random() * (step / 2);
}

// `path` comes from the page (a data-ws-path attribute rendered by the server).
// onMessage gets each JSON message parsed; onOpen and onClose report the state.
// reconnect() says whether to try again after a close (default: always).
export function openSocket(path, { onOpen, onMessage, onClose, reconnect = () => true, binaryType } = {}) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
  let socket = null;
  let attempt = 0;

  function connect() {
    socket = new WebSocket(url);
    if (binaryType) socket.binaryType = binaryType;
    socket.addEventListener("open", () => { attempt = 0; onOpen?.(); });
    socket.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      onMessage?.(msg);
    });
    socket.addEventListener("close", (ev) => {
      if (!reconnect()) return;
      onClose?.(ev);
      setTimeout(connect, reconnectDelay(attempt));
      attempt += 1;
    });
  }

  connect();
  return {
    get isOpen() { return socket.readyState === WebSocket.OPEN; },
    get bufferedAmount() { return socket.bufferedAmount; },
    // A JSON message, or binary data as is. False if not connected right now.
    send(data) {
      if (socket.readyState !== WebSocket.OPEN) return false;
      socket.send(data instanceof ArrayBuffer ? data : JSON.stringify(data));
      return true;
    },
  };
}
