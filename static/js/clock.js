// One clock for every time a person reads (the server's half is exams/clock.py):
// two kinds, one format each, always with the zone named:
//   "time"      14:05:07 CET              (time of day)
//   "datetime"  Fri 4 Dec 2026, 14:05 CET (date and time)
// in the reader's own browser zone. Importing this module rewrites every
// <time datetime="ISO" data-clock="kind"> of the page, which the server wrote in
// its own zone (kept as the tooltip); page modules format pushed times with it.
const PARTS = {
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  datetime: { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" },
};
const formats = new Map();

function formatter(kind, timeZone) {
  const key = `${kind}|${timeZone ?? ""}`;
  if (!formats.has(key)) {
    if (!PARTS[kind]) throw new Error(`unknown kind of time: ${kind}`);
    // Fixed English, 24-hour parts; the zone's abbreviation in the reader's own locale.
    formats.set(key, {
      parts: new Intl.DateTimeFormat("en-GB", { ...PARTS[kind], hourCycle: "h23", timeZone }),
      zone: new Intl.DateTimeFormat(undefined, { timeZoneName: "short", timeZone }),
    });
  }
  return formats.get(key);
}

export function formatClock(value, kind = "time", timeZone = undefined) {
  const at = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(at.getTime())) return "";
  const { parts, zone } = formatter(kind, timeZone);
  const p = Object.fromEntries(parts.formatToParts(at).map(({ type, value: v }) => [type, v]));
  const name = zone.formatToParts(at).find((part) => part.type === "timeZoneName")?.value ?? "";
  const clock = kind === "time" ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
  const text = kind === "time" ? clock : `${p.weekday} ${p.day} ${p.month} ${p.year}, ${clock}`;
  return name ? `${text} ${name}` : text;
}

// Show one <time> element in the reader's zone (the server's text stays as its tooltip).
export function showClock(element, value = element.dateTime, kind = element.dataset.clock || "time") {
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) return;
  if (!element.title && element.textContent.trim()) element.title = element.textContent.trim();
  element.dateTime = at.toISOString();
  element.dataset.clock = kind;
  element.textContent = formatClock(at, kind);
}

// A new <time> element for a pushed time.
export function clockElement(value, kind = "time", className = "") {
  const element = document.createElement("time");
  if (className) element.className = className;
  showClock(element, value, kind);
  return element;
}

export function showClocks(root = document) {
  for (const element of root.querySelectorAll("time[data-clock]")) showClock(element);
}

showClocks();
