// The chat socket: discovery, hello/ready, heartbeats, and reconnecting with
// jittered exponential back-off (docs/protocol.md, "Reconnecting").

const CLOSE_UNAUTHENTICATED = 4401;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;
// Opening and catching up must make progress: a handshake or replay silent this
// long is given up (a dead route can leave a socket "connecting" for minutes).
const STALL_MS = 15000;
// The back-off starts again from FIRST_DELAY_MS only once a socket has stayed up
// this long: a server that says `ready` and then crashes is not hammered.
const STABLE_MS = 10000;

/**
 * States: "connecting" (asking discovery, opening), "syncing" (open, hello sent,
 * replay under way), "ready", "waiting" (closed, a retry is scheduled), and
 * "signed_out" (the server refused our credentials: retrying cannot help; the
 * app then goes to the log-in page).
 */
export class ChatConnection {
  /**
   * @param {object} options
   * @param {() => Promise<{url: string}>} options.discover  GET chat-server/
   * @param {() => number|null} options.cursor  the cursor to send in `hello`
   * @param {(frame: object) => void} options.onFrame
   * @param {(state: string, info: object) => void} options.onState
   */
  constructor({ discover, cursor, onFrame, onState }) {
    this.discover = discover;
    this.cursor = cursor;
    this.onFrame = onFrame;
    this.onState = onState;
    this.state = "idle";
    this.ws = null;
    this.attempt = 0;
    this.generation = 0;
    this.retryTimer = null;
    this.retryAt = null;
    this.heartbeatTimer = null; // the page-timer fallback
    this.heartbeatInterval = null; // ms, while beating
    this.worker = undefined; // the heartbeat worker, once asked for (null: none)
    this.stallTimer = null;
    this.stableTimer = null;
    this.refused = false; // closed with 4401 since the last `ready`
  }

  start() {
    // The browser knows first when the network goes: drop the socket at once
    // instead of waiting for TCP to notice, and come back as soon as it returns.
    window.addEventListener("offline", () => this.drop());
    window.addEventListener("online", () => this.retryNow());
    // Back in view: beat at once, whatever the clock did while hidden.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.send({ type: "heartbeat" });
    });
    this.connect();
  }

  setState(state) {
    this.state = state;
    this.onState(state, { retryAt: this.retryAt });
  }

  async connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    if (this.ws || this.state === "signed_out") return;
    const generation = ++this.generation;
    this.setState("connecting");
    let url;
    try {
      ({ url } = await this.discover());
    } catch (error) {
      if (generation !== this.generation) return;
      if (error.signedOut) this.setState("signed_out");
      else this.scheduleRetry();
      return;
    }
    if (generation !== this.generation) return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.watchStall();
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.watchStall();
      this.setState("syncing");
      ws.send(JSON.stringify({ type: "hello", cursor: this.cursor() }));
    };
    ws.onmessage = (message) => {
      if (ws !== this.ws) return;
      if (this.state !== "ready") this.watchStall();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "ready") {
        clearTimeout(this.stallTimer);
        this.refused = false;
        clearTimeout(this.stableTimer);
        this.stableTimer = setTimeout(() => {
          if (ws === this.ws) this.attempt = 0;
        }, STABLE_MS);
        this.startHeartbeat(frame.heartbeat_interval);
        this.setState("ready");
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => this.closed(ws, event.code);
    ws.onerror = () => {}; // a close event follows
  }

  watchStall() {
    clearTimeout(this.stallTimer);
    const ws = this.ws;
    this.stallTimer = setTimeout(() => {
      if (ws === this.ws && this.state !== "ready") this.drop();
    }, STALL_MS);
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    clearTimeout(this.stallTimer);
    clearTimeout(this.stableTimer);
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.ws = null;
    this.stopHeartbeat();
    if (code === CLOSE_UNAUTHENTICATED) {
      // Credentials revoked. Usually the session is gone (logged out elsewhere,
      // deactivated): discovery answers 401 and we are signed out. A password
      // changed in this browser keeps its session but closes every socket:
      // then discovery works and one reconnect is worth it. A second 4401
      // without a `ready` between means signed out whatever discovery says.
      if (this.refused) {
        this.setState("signed_out");
        return;
      }
      this.refused = true;
      this.connect();
      return;
    }
    this.scheduleRetry();
  }

  /** Give the socket up now (network gone, or it stopped answering) and retry. */
  drop() {
    const ws = this.ws;
    if (ws) {
      this.closed(ws, 1006);
      try {
        ws.close();
      } catch {
        // already closing
      }
    } else if (this.state === "connecting") {
      // A discovery request in flight: forget it and back off.
      this.generation++;
      this.scheduleRetry();
    }
  }

  scheduleRetry() {
    if (this.state === "signed_out") return;
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = base * (0.5 + Math.random()); // +-50 %: clients that lost one server spread out
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.setState("waiting");
  }

  retryNow() {
    if (this.state !== "waiting") return;
    this.connect();
  }

  /** The heartbeat's clock: a dedicated worker (its timers are not slowed in
   * a hidden tab), or a page timer where a worker cannot start. */
  heartbeatClock() {
    if (this.worker === undefined) {
      this.worker = null;
      try {
        // Through the import map: with hashed static names, the hashed file.
        const url = import.meta.resolve
          ? import.meta.resolve("./heartbeat-worker.js")
          : new URL("./heartbeat-worker.js", import.meta.url).href;
        const worker = new Worker(url);
        worker.onmessage = () => this.send({ type: "heartbeat" });
        worker.onerror = () => {
          // It did not load: beat on a page timer instead.
          worker.terminate();
          this.worker = null;
          if (this.heartbeatInterval) this.startHeartbeat(this.heartbeatInterval / 1000);
        };
        this.worker = worker;
      } catch {
        this.worker = null;
      }
    }
    return this.worker;
  }

  startHeartbeat(seconds) {
    this.stopHeartbeat();
    const interval = Math.max(0.2, Number(seconds) || 5) * 1000;
    this.heartbeatInterval = interval;
    const worker = this.heartbeatClock();
    if (worker) worker.postMessage({ interval });
    else this.heartbeatTimer = setInterval(() => this.send({ type: "heartbeat" }), interval);
  }

  stopHeartbeat() {
    this.heartbeatInterval = null;
    this.worker?.postMessage({ interval: 0 });
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  get ready() {
    return this.state === "ready" && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a frame if the socket is ready; false when it is not. */
  send(frame) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
