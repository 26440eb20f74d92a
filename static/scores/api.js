// The JSON API from the page: same-origin session cookie plus the CSRF header, and every refusal in plain words.

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const cookie = document.cookie.split("; ").find((item) => item.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.split("=")[1]) : "";
}

export class ApiError extends Error {
  constructor(status, code, message, details, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = retryAfter;
  }
}

export async function callApi(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "", {}, null);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return data;
  const error = (data && data.error) || {};
  const retryAfter = Number(response.headers.get("Retry-After")) || Number(error.details?.retryAfterSeconds) || null;
  throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || "", error.details, retryAfter);
}

function seconds(value) {
  const rounded = Math.max(1, Math.ceil(Number(value) || 0));
  return `${rounded} second${rounded === 1 ? "" : "s"}`;
}

// What to tell the player, for each refusal the API can give.
export function explain(error) {
  const details = error.details || {};
  if (error.status === 429 || error.code === "rate_limited") {
    return error.retryAfter
      ? `Slow down: too many requests. Try again in ${seconds(error.retryAfter)}.`
      : "Slow down: too many requests. Wait a moment and try again.";
  }
  switch (error.code) {
    case "action_too_fast":
      return `Too fast: this action can only be completed after its minimum time. Wait ${seconds(details.secondsRemaining)} more.`;
    case "action_not_started":
      if (details.status === "expired") return "Too late: this action expired before it was completed. Start a new one.";
      if (details.status === "completed") return "Already completed: each action pays only once.";
      if (details.status === "cancelled") return "This action was cancelled, so it cannot be completed.";
      return "This action can no longer change.";
    case "too_many_open_actions":
      return "You already have the most actions in progress at once. Complete or cancel one first (unfinished ones expire on their own).";
    case "daily_cap_reached": {
      const resets = details.resetsAt ? new Date(details.resetsAt) : null;
      const when = resets && !Number.isNaN(resets.getTime())
        ? ` It resets at ${resets.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" })}.`
        : " It resets tomorrow.";
      return `Daily limit reached: you have played this action as often as allowed today.${when}`;
    }
    case "banned":
      return "This account has been banned, so it cannot score.";
    case "action_not_found":
      return "This action no longer exists. Start a new one.";
    case "unknown_action_type":
      return "This action is no longer available. Reload the page to see the current list.";
    case "not_authenticated":
    case "authentication_failed":
    case "invalid_token":
      return "You are signed out. Sign in again to keep playing.";
    case "forbidden":
      return error.message && /csrf/i.test(error.message)
        ? "This page is out of date. Reload it and try again."
        : "You are not allowed to do that.";
    case "network_error":
      return "Could not reach the server. Check your connection and try again.";
    default:
      if (error.status >= 500) return "Something went wrong on our side. Try again in a moment.";
      return error.message || "The server refused this request.";
  }
}
