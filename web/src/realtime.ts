// One WebSocket per open project page: hello, subscribe, then apply the project's frames to
// the store in sequence order. Reconnects with full-jitter backoff and resumes from the last
// applied sequence number of the same epoch, so no frame is missed or applied twice.

import { decodeFrame, describeClose, encodeFrame, isFinalClose, PROTOCOL_VERSION } from "./protocol";
import type { ClientFrame, ServerFrame } from "./protocol";
import type { Command, Session } from "./session";
import { INVALID_LINK } from "./session";
import type { ProjectStore } from "./state";
import type { Member } from "./types";

/** Backoff ceiling and base, in seconds, and how long a connection must last to reset it. */
const BACKOFF_MAX_S = 30;
const BACKOFF_BASE_S = 0.5;
const STABLE_AFTER_MS = 60_000;
/** Heartbeat interval assumed until the server's welcome names its own. */
const DEFAULT_HEARTBEAT_S = 15;

interface PendingRequest {
  resolve: () => void;
  reject: (error: Error) => void;
}

type FrameDistribution<T> = T extends { t: infer K } ? K : never;
type ServerFrameOf<K extends FrameDistribution<ServerFrame>> = Extract<ServerFrame, { t: K }>;

function toMembers(viewers: unknown): Member[] {
  if (!Array.isArray(viewers)) return [];
  return viewers.map((viewer: Record<string, unknown>) => ({
    id: typeof viewer.conn === "string" ? viewer.conn : undefined,
    name: String(viewer.name ?? "anonymous"),
    role: viewer.role === "editor" ? "editor" : "viewer",
  }));
}

export class LiveSession implements Session {
  private socket: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, PendingRequest>();
  private subscribeId: number | null = null;
  private subscribed = false;
  private closed = false;

  // Resume position: the last applied sequence number and the epoch it belongs to.
  private epoch: string | null = null;
  private seq: number | null = null;
  private channel: number | null = null;
  private jobsByNumber = new Map<number, string>();

  private attempt = 0;
  private openedAt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatS = DEFAULT_HEARTBEAT_S;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastReceived = 0;
  private immediateRetry = false;

  constructor(
    private readonly projectId: string,
    private readonly token: string,
    private name: string,
    readonly store: ProjectStore,
  ) {
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  retryNow(): void {
    if (this.closed || this.socket || !this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  /** Retries at once when the browser reports that the network is back. */
  private readonly onOnline = (): void => this.retryNow();

  send(command: Command): Promise<void> {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN || !this.subscribed) {
      return Promise.reject(new Error("Not connected to the server; try again once the page shows Live."));
    }
    const id = this.nextId++;
    const project = this.projectId;
    let frame: ClientFrame;
    switch (command.op) {
      case "cancel":
        frame = { t: "cancel", id, project, job: command.job_id };
        break;
      case "cancel_project":
        frame = { t: "cancel", id, project };
        break;
      case "set_priority":
        frame = { t: "set_priority", id, project, job: command.job_id, priority: command.priority };
        break;
      case "retry":
        frame = { t: "retry", id, project, job: command.job_id };
        break;
    }
    return this.request(frame);
  }

  rename(name: string): void {
    // The name is part of hello, so a new name needs a new connection; the resume keeps state.
    this.name = name;
    this.immediateRetry = true;
    this.socket?.close(1000, "display name changed");
  }

  close(): void {
    this.closed = true;
    window.removeEventListener("online", this.onOnline);
    this.stopTimers();
    this.socket?.close(1000, "page closed");
    this.socket = null;
    this.failPending(new Error("The page was closed."));
  }

  private request(frame: ClientFrame): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.set(frame.id, { resolve, reject });
      this.write(frame);
    });
  }

  private write(frame: ClientFrame): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(encodeFrame(frame));
  }

  private connect(): void {
    if (this.closed) return;
    this.subscribed = false;
    this.store.setConnection(this.attempt === 0 ? { kind: "connecting" } : this.store.current.connection);
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/api/ws`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;

    socket.onopen = () => {
      this.openedAt = Date.now();
      this.lastReceived = Date.now();
      const id = this.nextId++;
      this.write({ t: "hello", id, versions: [PROTOCOL_VERSION], name: this.name, tokens: [this.token] });
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.lastReceived = Date.now();
      if (!(event.data instanceof ArrayBuffer)) return;
      let frame: ServerFrame;
      try {
        frame = decodeFrame(event.data);
      } catch (error) {
        console.warn("viralsplit: undecodable frame ignored", error);
        return;
      }
      this.handle(frame);
    };
    socket.onclose = (event) => {
      if (socket === this.socket) this.lost(event.code);
    };
  }

  /** Cleans up after the current socket ended and decides whether to reconnect. */
  private lost(code: number): void {
    this.socket = null;
    this.subscribed = false;
    this.stopTimers();
    this.failPending(new Error("The connection was lost before the server answered; try again."));
    if (this.closed) return;
    if (isFinalClose(code)) {
      this.store.setConnection({ kind: "closed", reason: describeClose(code) });
      return;
    }
    this.scheduleReconnect(code);
  }

  private scheduleReconnect(code: number): void {
    if (this.openedAt && Date.now() - this.openedAt >= STABLE_AFTER_MS) this.attempt = 0;
    this.attempt += 1;
    this.openedAt = 0;
    const ceiling = Math.min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (this.attempt - 1));
    // Full jitter spreads the reconnects of many pages after a server restart. The server
    // allows an immediate first attempt after 4000 (client fell behind); a rename also retries at once.
    const immediate = this.immediateRetry || (code === 4000 && this.attempt === 1);
    this.immediateRetry = false;
    const delayMs = immediate ? 0 : Math.random() * ceiling * 1000;
    this.store.setConnection({ kind: "reconnecting", attempt: this.attempt, retryAt: Date.now() + delayMs });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delayMs);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const intervalMs = this.heartbeatS * 1000;
    // Pinging at a third of the interval keeps the server's idle timer far from expiry.
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastReceived > 3 * intervalMs) {
        // A dead peer may take minutes to fire onclose, so the socket is dropped here.
        this.socket?.close(4002, "no frame from the server");
        this.lost(1006);
        return;
      }
      this.write({ t: "ping", id: this.nextId++ });
    }, Math.max(1000, intervalMs / 3));
  }

  private stopHeartbeat(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private stopTimers(): void {
    this.stopHeartbeat();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private failPending(error: Error): void {
    for (const request of this.pending.values()) request.reject(error);
    this.pending.clear();
  }

  private subscribe(): void {
    const id = this.nextId++;
    this.subscribeId = id;
    const frame: ClientFrame = { t: "subscribe", id, project: this.projectId, token: this.token };
    if (this.seq != null && this.epoch != null) {
      frame.seq = this.seq;
      frame.epoch = this.epoch;
    }
    this.write(frame);
  }

  private handle(frame: ServerFrame): void {
    switch (frame.t) {
      case "heartbeat":
      case "unknown":
        return;
      case "welcome":
        this.heartbeatS = frame.heartbeat_s > 0 ? frame.heartbeat_s : DEFAULT_HEARTBEAT_S;
        this.startHeartbeat();
        this.subscribe();
        return;
      case "ack":
        this.handleAck(frame);
        return;
      case "error":
        this.handleError(frame);
        return;
      case "snapshot":
        this.handleSnapshot(frame);
        return;
      default:
        this.handleProjectFrame(frame);
    }
  }

  private handleAck(frame: ServerFrameOf<"ack">): void {
    if (frame.id === this.subscribeId) {
      this.subscribed = true;
      this.channel = frame.ch ?? this.channel;
      if (frame.role) this.store.setRole(frame.role);
      this.store.setConnection({ kind: "live", resumed: frame.resumed === true });
      return;
    }
    const request = this.pending.get(frame.id);
    if (request) {
      this.pending.delete(frame.id);
      request.resolve();
    }
  }

  private handleError(frame: ServerFrameOf<"error">): void {
    if (frame.id != null && frame.id === this.subscribeId) {
      if (frame.code === "unauthorized") {
        this.closed = true;
        this.socket?.close(1000, "unauthorized");
        this.store.setFatal(INVALID_LINK);
      } else {
        console.warn("viralsplit: subscribe failed", frame.code, frame.message);
      }
      return;
    }
    const request = frame.id != null ? this.pending.get(frame.id) : undefined;
    if (request) {
      this.pending.delete(frame.id!);
      request.reject(new Error(frame.message || frame.code));
    } else if (frame.code !== "too_many_requests") {
      console.warn("viralsplit: server error", frame.code, frame.message);
    }
  }

  private handleSnapshot(frame: ServerFrameOf<"snapshot">): void {
    if (frame.project !== this.projectId) return;
    this.channel = frame.ch;
    this.epoch = frame.epoch;
    this.seq = frame.seq;
    this.jobsByNumber.clear();
    for (const job of frame.state.jobs) {
      if (typeof job.n === "number") this.jobsByNumber.set(job.n, job.id);
    }
    const jobs = frame.state.jobs.map((job) => ({ ...job, platforms: job.platforms ?? [] }));
    this.store.replaceSnapshot({ ...frame.state, jobs, activity: frame.state.activity ?? [] });
    this.store.apply({ type: "presence", members: toMembers(frame.presence) });
  }

  /** Applies a frame that carries `ch` and `seq`, in order, once. */
  private handleProjectFrame(frame: Exclude<ServerFrame, { t: "heartbeat" | "welcome" | "ack" | "error" | "snapshot" | "unknown" }>): void {
    if (frame.ch !== this.channel || this.seq == null) return;
    // A frame at or below the applied sequence number is a duplicate. A gap above it is
    // normal: a lagging connection drops progress frames that a newer one replaced.
    if (frame.seq <= this.seq) return;
    this.seq = frame.seq;
    const store = this.store;
    switch (frame.t) {
      case "job":
        this.jobsByNumber.set(frame.n, frame.job);
        store.apply({
          type: "job_state",
          job_id: frame.job,
          state: frame.state,
          error: frame.error,
          priority: frame.priority,
          attempt: frame.attempt,
        });
        return;
      case "job_added":
        this.jobsByNumber.set(frame.n, frame.job);
        store.apply({
          type: "job_added",
          job: { id: frame.job, kind: frame.kind, label: frame.label, priority: frame.priority },
        });
        return;
      case "priority":
        this.jobsByNumber.set(frame.n, frame.job);
        store.apply({ type: "priority", job_id: frame.job, priority: frame.priority, queue_order: frame.queue });
        return;
      case "progress": {
        const jobId = this.jobsByNumber.get(frame.n);
        if (jobId) store.apply({ type: "progress", job_id: jobId, progress: frame.progress });
        return;
      }
      case "output": {
        const output = frame.output;
        const base = `/api/outputs/${encodeURIComponent(output.id)}`;
        store.apply({
          type: "output",
          output: { ...output, url: output.url ?? base, thumbnail_url: output.thumbnail_url === undefined ? `${base}/thumbnail` : output.thumbnail_url },
        });
        return;
      }
        return;
      case "source":
        store.apply({ type: "source", info: frame.info });
        return;
      case "presence":
        store.apply({ type: "presence", members: toMembers(frame.viewers) });
        return;
      case "activity":
        store.apply({ type: "activity", activity: frame.activity });
        return;
    }
  }
}

export function openSession(projectId: string, token: string, name: string, store: ProjectStore): Session {
  return new LiveSession(projectId, token, name, store);
}
