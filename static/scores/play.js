// The play panel: start an action, watch its timer, complete or cancel it through the JSON API.
import { callApi, explain } from "./api.js";

const ACTIONS_PATH = "/api/v1/users/me/actions";
const panel = document.getElementById("current");
const outcome = document.getElementById("outcome");
const timer = document.getElementById("timer");
const hint = document.getElementById("timer-hint");
const meter = document.getElementById("meter-fill");
const completeButton = document.getElementById("complete");
const cancelButton = document.getElementById("cancel");
const startButtons = [...document.querySelectorAll("button.start")];

let current = null; // { id, name, points, minMs, maxMs, startedLocal }
let ticker = null;

function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const secs = String(total % 60).padStart(2, "0");
  return minutes >= 60 ? `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

function say(text, kind) {
  outcome.className = `outcome ${kind}`;
  outcome.textContent = text;
}

function setBusy(busy) {
  for (const button of [completeButton, cancelButton]) button.disabled = busy;
  for (const button of startButtons) button.disabled = busy || current !== null;
}

function tick() {
  if (!current) return;
  const elapsed = Date.now() - current.startedLocal;
  timer.textContent = clock(elapsed);
  timer.dateTime = `PT${Math.floor(elapsed / 1000)}S`;
  const ready = elapsed >= current.minMs;
  panel.dataset.phase = elapsed > current.maxMs ? "expired" : ready ? "ready" : "waiting";
  if (elapsed > current.maxMs) hint.textContent = "Time is up: this action has expired.";
  else if (!ready) hint.textContent = `Ready to complete in ${Math.ceil((current.minMs - elapsed) / 1000)} s.`;
  else hint.textContent = `Ready: complete it within ${clock(current.maxMs - elapsed)}.`;
  const progress = current.minMs ? Math.min(1, elapsed / current.minMs) : 1;
  meter.style.width = `${Math.round(progress * 100)}%`;
}

function showCurrent(action, card) {
  const startedAt = Date.parse(action.startedAt);
  const expiresAt = Date.parse(action.expiresAt);
  current = {
    id: action.actionId,
    name: card.dataset.name,
    points: card.dataset.points,
    minMs: Number(card.dataset.minSeconds) * 1000,
    maxMs: Number.isNaN(expiresAt - startedAt) ? Number(card.dataset.maxSeconds) * 1000 : expiresAt - startedAt,
    startedLocal: Date.now(), // the local clock, so a skewed device clock does not distort the timer
  };
  document.getElementById("current-name").textContent = current.name;
  document.getElementById("current-points").textContent = current.points;
  panel.hidden = false;
  panel.dataset.actionId = current.id;
  tick();
  ticker = setInterval(tick, 250);
}

function clearCurrent() {
  clearInterval(ticker);
  ticker = null;
  current = null;
  panel.hidden = true;
  delete panel.dataset.actionId;
}

function showStanding(score, rank) {
  document.getElementById("my-score").textContent = String(score);
  document.getElementById("my-rank").textContent = rank ? `#${rank}` : "–";
}

async function start(card) {
  setBusy(true);
  try {
    const action = await callApi("POST", ACTIONS_PATH, { actionType: card.dataset.code });
    showCurrent(action, card);
    say(`Started ${card.dataset.name}.`, "info");
  } catch (error) {
    say(explain(error), "refusal");
  } finally {
    setBusy(false);
  }
}

async function finish(status) {
  if (!current) return;
  const action = current;
  setBusy(true);
  try {
    const result = await callApi("PUT", `${ACTIONS_PATH}/${encodeURIComponent(action.id)}`, { status });
    clearCurrent();
    showStanding(result.score, result.rank);
    if (status === "completed") {
      say(`+${result.pointsAwarded} points for ${action.name}! Your score is now ${result.score}` +
          (result.rank ? `, rank #${result.rank}.` : "."), "success");
    } else {
      say(`Cancelled ${action.name}: no points.`, "info");
    }
  } catch (error) {
    // A refusal that ends the action (expired, already finished, gone) closes the panel; others leave it to retry.
    if (error.code === "action_not_started" || error.code === "action_not_found") clearCurrent();
    say(explain(error), "refusal");
  } finally {
    setBusy(false);
  }
}

for (const button of startButtons) {
  button.addEventListener("click", () => start(button.closest(".action-card")));
}
completeButton.addEventListener("click", () => finish("completed"));
cancelButton.addEventListener("click", () => finish("cancelled"));
