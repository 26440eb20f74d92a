// The live board: keeps the server-rendered top 10 current from /ws/scoreboard, animating every change.
// All user text goes in with textContent, never as HTML.
import { LiveSocket, websocketUrl } from "./live.js";

const section = document.getElementById("board");
const tbody = document.getElementById("board-rows");
const statusLine = document.getElementById("live-status");
const statusText = statusLine.querySelector(".status-text");
const statusTime = statusLine.querySelector(".status-time");
const lastUpdate = document.getElementById("last-update");
const myRank = document.getElementById("my-rank");
const meId = section.dataset.me;
// The socket subscribes to the shown period's board (?period=); its rank_update is the all-time rank, so on another
// period the viewer's own standing is read from the JSON API when their score changes.
const period = section.dataset.period || "all-time";
const isAllTime = period === "all-time";
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const state = { version: Number(section.dataset.version) || 0, freshConnection: true, inTop: null, mine: null };

const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

function showState(name, detail) {
  statusLine.dataset.state = name;
  let text = STATUS_TEXT[name] || name;
  if (name === "reconnecting" && detail.retryInMs) text = `Reconnecting… (next try in ${Math.ceil(detail.retryInMs / 1000)} s)`;
  if (name === "offline") text = detail.reason ? `Offline: ${detail.reason}` : "Offline: retrying…";
  statusText.textContent = text;
  if (name !== "live") state.freshConnection = true;
}

function showUpdatedAt(isoTimestamp) {
  const when = isoTimestamp ? new Date(isoTimestamp) : new Date();
  const shown = Number.isNaN(when.getTime()) ? new Date() : when;
  lastUpdate.dateTime = shown.toISOString();
  lastUpdate.textContent = shown.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  statusTime.hidden = false;
}

function makeRow(userId) {
  const row = document.createElement("tr");
  row.dataset.userId = userId;
  const rank = document.createElement("td");
  rank.className = "rank";
  const badge = document.createElement("span");
  badge.className = "rank-badge";
  rank.append(badge);
  const name = document.createElement("th");
  name.scope = "row";
  name.className = "name";
  const score = document.createElement("td");
  score.className = "score";
  row.append(rank, name, score);
  return row;
}

function fillRow(row, entry) {
  const isMe = entry.userId === meId;
  row.dataset.rank = String(entry.rank);
  row.dataset.score = String(entry.score);
  row.classList.toggle("me", isMe);
  if (isMe) row.setAttribute("aria-current", "true");
  else row.removeAttribute("aria-current");
  row.querySelector(".rank-badge").textContent = String(entry.rank);
  const name = row.querySelector(".name");
  name.textContent = entry.username;
  if (isMe) {
    const you = document.createElement("span");
    you.className = "you";
    you.textContent = " (you)";
    name.append(you);
  }
  row.querySelector(".score").textContent = String(entry.score);
}

function emptyRow() {
  const row = document.createElement("tr");
  row.className = "empty";
  const cell = document.createElement("td");
  cell.colSpan = 3;
  cell.textContent = "Nobody has scored yet.";
  row.append(cell);
  return row;
}

// FLIP: remember where each row was, render the new order, then slide every row from its old place to its new one.
function renderBoard(entries) {
  const before = new Map();
  for (const row of tbody.querySelectorAll("tr[data-user-id]")) {
    before.set(row.dataset.userId, { row, top: row.getBoundingClientRect().top, rank: Number(row.dataset.rank), score: row.dataset.score });
  }
  const rows = entries.map((entry) => {
    const row = before.get(entry.userId)?.row || makeRow(entry.userId);
    fillRow(row, entry);
    return row;
  });
  tbody.replaceChildren(...(rows.length ? rows : [emptyRow()]));
  if (reducedMotion.matches) return;
  const moved = [];
  entries.forEach((entry, index) => {
    const row = rows[index];
    const old = before.get(entry.userId);
    if (!old) {
      restartAnimation(row, "row-enter");
      return;
    }
    const dy = old.top - row.getBoundingClientRect().top;
    if (dy) {
      row.style.transition = "none";
      row.style.transform = `translateY(${dy}px)`;
      moved.push(row);
    }
    if (old.score !== String(entry.score)) restartAnimation(row, "score-flash");
    if (old.rank !== entry.rank) restartAnimation(row, entry.rank < old.rank ? "rank-up" : "rank-down");
  });
  if (!moved.length) return;
  tbody.getBoundingClientRect(); // apply the inverted positions before animating back to zero
  requestAnimationFrame(() => {
    for (const row of moved) {
      row.style.transition = "";
      row.style.transform = "";
    }
  });
}

function restartAnimation(row, className) {
  row.classList.remove("row-enter", "score-flash", "rank-up", "rank-down");
  void row.offsetWidth; // restart the CSS animation when the same class is applied twice in a row
  row.classList.add(className);
  row.addEventListener("animationend", () => row.classList.remove(className), { once: true });
}

function showMine() {
  if (!meId || !myRank) return;
  const inTop = state.inTop;
  const mine = state.mine;
  if (inTop || !mine) {
    myRank.hidden = inTop !== false || !mine;
    return;
  }
  myRank.replaceChildren();
  if (mine.rank) {
    const rank = document.createElement("strong");
    rank.textContent = `#${mine.rank}`;
    const score = document.createElement("strong");
    score.textContent = String(mine.score ?? 0);
    myRank.append("You are ", rank, " with ", score, " points.");
  } else {
    const play = document.createElement("a");
    play.href = "/play";
    play.textContent = "Play";
    myRank.append("You are not on the board yet. ", play, " to get on it.");
  }
  myRank.hidden = false;
}

async function fetchJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

let mineRefresh = null;

// The viewer's own rank on this period's board; one request at a time, a change meanwhile folded into one more.
function refreshMine() {
  if (mineRefresh) {
    mineRefresh.again = true;
    return;
  }
  const run = { again: false };
  mineRefresh = run;
  (async () => {
    try {
      const around = await fetchJson(`/api/v1/leaderboard?around=me&limit=1&period=${encodeURIComponent(period)}`);
      const mine = (around.data || []).find((entry) => entry.userId === meId);
      state.mine = { rank: mine ? mine.rank : null, score: mine ? mine.score : 0, version: 0 };
      showMine();
    } catch {
      // The next change of the viewer's score tries again.
    } finally {
      mineRefresh = null;
      if (run.again) refreshMine();
    }
  })();
}

function onTopScores(message) {
  if (message.period && message.period !== period) return;
  // The snapshot after each (re)connect always wins; after that, anything older than what is shown is dropped.
  const version = Number(message.version) || 0;
  if (!state.freshConnection && version < state.version) return;
  const entries = Array.isArray(message.payload) ? message.payload : [];
  state.version = version;
  renderBoard(entries);
  showUpdatedAt(message.timestamp);
  if (meId) {
    const wasInTop = state.inTop;
    state.inTop = entries.some((entry) => entry.userId === meId);
    // Off the all-time board no rank_update says where a viewer who just left the top 10 stands (or that a new
    // day or week started): ask once.
    if (!isAllTime && wasInTop && !state.inTop) refreshMine();
    showMine();
  }
  if (state.freshConnection) {
    state.freshConnection = false;
    live.markLive();
  }
}

function onRankUpdate(message) {
  if (!isAllTime) {
    if (!state.inTop) refreshMine();
    return;
  }
  const version = Number(message.version) || 0;
  if (state.mine && version < state.mine.version) return;
  state.mine = { rank: message.rank, score: message.score, version };
  state.inTop = typeof message.rank === "number" && message.rank <= 10;
  showMine();
}

const socketPath = isAllTime ? section.dataset.wsPath : `${section.dataset.wsPath}?period=${encodeURIComponent(period)}`;
const live = new LiveSocket(websocketUrl(socketPath), {
  onMessage(message) {
    if (message.type === "top_scores_update") onTopScores(message);
    else if (message.type === "rank_update") onRankUpdate(message);
  },
  onState: showState,
});

// Seed "mine" from the server-rendered paragraph so a rank_update that only changes the score keeps the rank.
if (meId && myRank) {
  const renderedRank = myRank.querySelector(".my-rank-value")?.textContent;
  const renderedScore = myRank.querySelector(".my-score-value")?.textContent;
  state.inTop = myRank.hidden ? true : false;
  if (!myRank.hidden) state.mine = { rank: Number(renderedRank) || null, score: Number(renderedScore) || 0, version: 0 };
}

if (section.dataset.live === "on") live.start();
