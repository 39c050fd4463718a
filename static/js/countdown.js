// The exam's countdown, computed from the server's clock. The page is rendered
// with the server's "now"; the difference to this computer's clock at load is
// kept, so a candidate's clock that is minutes off shows the same time left as
// the server will enforce.
export const WARNINGS = [
  { seconds: 5 * 60, text: "5 minutes left. Your exam is submitted automatically when time is up." },
  { seconds: 60, text: "1 minute left. Your exam is submitted automatically when time is up." },
];

export function clockOffsetMs(serverNowIso, clientNowMs = Date.now()) {
  const server = Date.parse(serverNowIso);
  return Number.isNaN(server) ? 0 : server - clientNowMs;
}

export function secondsLeft(deadlineMs, offsetMs, clientNowMs = Date.now()) {
  return Math.max(0, Math.ceil((deadlineMs - (clientNowMs + offsetMs)) / 1000));
}

export function formatLeft(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

// Calls onTick(seconds) every second, onWarn(text) once per threshold crossed,
// and onZero() once when time is up. setDeadline() moves the end (extra time),
// re-arms the warnings, and says whether the deadline changed.
export function startCountdown({ deadlineIso, serverNowIso, onTick, onWarn, onZero }) {
  const offset = clockOffsetMs(serverNowIso);
  let deadline = Date.parse(deadlineIso);
  let warned = new Set();
  let ended = false;

  function tick() {
    const left = secondsLeft(deadline, offset);
    onTick(left);
    // The closest threshold already reached: a page opened with 40 s left
    // warns once, about the last minute, not twice.
    const reached = WARNINGS.filter((w) => left > 0 && left <= w.seconds).at(-1);
    if (reached && !warned.has(reached.seconds)) {
      for (const w of WARNINGS) if (w.seconds >= reached.seconds) warned.add(w.seconds);
      onWarn(reached.text, reached.seconds);
    }
    if (left === 0 && !ended) { ended = true; onZero(); }
  }

  tick();
  const timer = setInterval(tick, 1000);
  return {
    setDeadline(iso) {
      const next = Date.parse(iso);
      if (Number.isNaN(next) || next === deadline) return false;
      deadline = next;
      warned = new Set();
      if (secondsLeft(deadline, offset) > 0) ended = false;
      tick();
      return true;
    },
    secondsLeft: () => secondsLeft(deadline, offset),
    stop: () => clearInterval(timer),
  };
}
