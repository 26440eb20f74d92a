// A WebSocket that stays connected: exponential backoff with jitter, a ping heartbeat, and a state for the UI.
//
// States: "connecting" (first attempt), "live" (open and the snapshot has arrived), "reconnecting" (lost, retrying),
// "offline" (the browser is offline, retries keep failing, or the server refused us).

const REFUSED_CODES = new Set([4401, 4403, 1008]);

export class LiveSocket {
  constructor(url, { onMessage, onState, baseDelayMs = 500, maxDelayMs = 15000, heartbeatMs = 25000, offlineAfter = 6 }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.heartbeatMs = heartbeatMs;
    this.offlineAfter = offlineAfter;
    this.failures = 0;
    this.socket = null;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.lastHeard = 0;
    this.stopped = false;
  }

  start() {
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.wentOffline());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.socket) this.reconnectNow();
    });
    this.connect();
  }

  // The snapshot that follows every (re)connect is what makes the board current again, so "live" waits for it.
  markLive() {
    this.failures = 0;
    this.onState("live", {});
  }

  // Nothing can arrive while the device is offline: drop the socket, so coming back online means a fresh snapshot.
  wentOffline() {
    const socket = this.socket;
    this.socket = null;
    this.stopHeartbeat();
    clearTimeout(this.retryTimer);
    if (socket) socket.close();
    this.onState("offline", { reason: "Your device is offline." });
    this.retryTimer = setTimeout(() => this.connect(), this.maxDelayMs);
  }

  reconnectNow() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    this.retryTimer = null;
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.lastHeard = Date.now();
      this.startHeartbeat();
    });
    socket.addEventListener("message", (event) => {
      this.lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && message.type !== "pong") this.onMessage(message);
    });
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.stopHeartbeat();
    if (REFUSED_CODES.has(event.code)) {
      this.stopped = true;
      this.onState("offline", { reason: "The server refused the live connection: sign in again." });
      return;
    }
    this.scheduleRetry();
  }

  // Equal jitter: wait between half and all of min(max, base * 2^failures), so a restarted server is not
  // hit by every viewer in the same instant, and nobody retries in a tight loop.
  scheduleRetry() {
    if (this.stopped) return;
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** this.failures);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.failures += 1;
    const offline = navigator.onLine === false || this.failures > this.offlineAfter;
    this.onState(offline ? "offline" : "reconnecting", { retryInMs: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      const socket = this.socket;
      if (!socket) return;
      // Two heartbeats without a word from the server: the connection is dead even if TCP has not noticed.
      if (Date.now() - this.lastHeard > 2 * this.heartbeatMs + 5000) {
        this.socket = null;
        this.stopHeartbeat();
        socket.close();
        this.scheduleRetry();
        return;
      }
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
    }, this.heartbeatMs);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }
}

export function websocketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}
