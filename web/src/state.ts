// The project's live state: a snapshot plus the events applied to it since, and the store that
// notifies the page when either changes. Every update makes new objects for what changed, so
// components can compare by identity.

import type { Activity, Job, JobState, Member, Output, Progress, Role, Snapshot } from "./types";
import { TERMINAL_STATES } from "./types";

export type ProjectEvent =
  | {
      type: "job_state";
      job_id: string;
      state: JobState;
      error?: string | null;
      priority?: number;
      attempt?: number;
    }
  | { type: "progress"; job_id: string; progress: Progress }
  | { type: "priority"; job_id: string; priority: number; queue_order?: string[] }
  | { type: "job_added"; job: Partial<Job> & { id: string } }
  | { type: "output"; output: Output }
  | { type: "source"; info: Record<string, unknown> }
  | { type: "activity"; activity: Activity }
  | { type: "presence"; members: Member[] };

export type ConnectionStatus =
  | { kind: "connecting" }
  /** `resumed` is true when the server replayed the missed frames instead of a new snapshot. */
  | { kind: "live"; resumed: boolean }
  | { kind: "reconnecting"; attempt: number; retryAt: number }
  | { kind: "closed"; reason: string };

export interface ProjectState {
  snapshot: Snapshot | null;
  members: Member[];
  connection: ConnectionStatus;
  /** The role the server granted this link's token; null until the subscribe ack arrives. */
  role: Role | null;
  /** Times the socket has become live; media that failed to load retries when it grows. */
  liveCount: number;
  /** A fatal problem with the link itself (wrong token, unknown project). */
  fatal: string | null;
}

const ACTIVITY_LIMIT = 50;

function nowSeconds(): number {
  return Date.now() / 1000;
}

function updateJob(snapshot: Snapshot, jobId: string, change: (job: Job) => Job): Snapshot {
  let found = false;
  const jobs = snapshot.jobs.map((job) => {
    if (job.id !== jobId) return job;
    found = true;
    return change(job);
  });
  return found ? { ...snapshot, jobs } : snapshot;
}

function applyJobState(snapshot: Snapshot, event: Extract<ProjectEvent, { type: "job_state" }>) {
  return updateJob(snapshot, event.job_id, (job) => {
    const next: Job = {
      ...job,
      state: event.state,
      error: event.error ?? (event.state === "failed" ? job.error : null),
      priority: event.priority ?? job.priority,
      attempt: event.attempt ?? job.attempt,
    };
    if (event.state !== "running") next.progress = null;
    if (event.state === "running" && job.state !== "running") {
      next.started_at = nowSeconds();
      next.ended_at = null;
      next.queue_position = null;
      next.progress = null;
    }
    if (event.state === "queued" && job.state !== "queued") {
      next.queue_position = null;
      next.started_at = null;
      next.ended_at = null;
    }
    if (TERMINAL_STATES.has(event.state)) {
      next.ended_at = job.ended_at ?? nowSeconds();
      next.queue_position = null;
    }
    return next;
  });
}

/**
 * Renumbers the queue after a job entered or left it. Jobs keep their known order; a job
 * that enters goes behind every queued job of the same or higher priority, as the scheduler
 * places it.
 */
function renumberQueue(snapshot: Snapshot, enteringId: string | null): Snapshot {
  const byPosition = (a: Job, b: Job) =>
    (a.queue_position ?? Number.MAX_SAFE_INTEGER) - (b.queue_position ?? Number.MAX_SAFE_INTEGER) ||
    b.priority - a.priority ||
    (a.created_at ?? 0) - (b.created_at ?? 0);
  const queue = snapshot.jobs
    .filter((job) => job.state === "queued" && job.id !== enteringId)
    .sort(byPosition);
  const entering = snapshot.jobs.find((job) => job.id === enteringId && job.state === "queued");
  if (entering) {
    const index = queue.findIndex((job) => job.priority < entering.priority);
    queue.splice(index === -1 ? queue.length : index, 0, entering);
  }
  const positions = new Map(queue.map((job, index) => [job.id, index]));
  return {
    ...snapshot,
    jobs: snapshot.jobs.map((job) => {
      const position = positions.get(job.id) ?? null;
      return job.queue_position === position ? job : { ...job, queue_position: position };
    }),
  };
}

function applyPriority(snapshot: Snapshot, event: Extract<ProjectEvent, { type: "priority" }>) {
  const changed = updateJob(snapshot, event.job_id, (job) => ({ ...job, priority: event.priority }));
  const order = event.queue_order;
  if (!order || order.length === 0) return changed;
  const position = new Map(order.map((id, index) => [id, index]));
  return {
    ...changed,
    jobs: changed.jobs.map((job) =>
      position.has(job.id) ? { ...job, queue_position: position.get(job.id)! } : job,
    ),
  };
}

function newJob(partial: Partial<Job> & { id: string }): Job {
  return {
    kind: "render",
    label: "",
    platforms: [],
    state: "queued",
    priority: 0,
    attempt: 1,
    error: null,
    created_at: nowSeconds(),
    started_at: null,
    ended_at: null,
    progress: null,
    queue_position: null,
    ...partial,
  };
}

/** Applies one event to a snapshot; events that refer to unknown jobs change nothing. */
export function applyEvent(snapshot: Snapshot, event: ProjectEvent): Snapshot {
  switch (event.type) {
    case "job_state": {
      const before = snapshot.jobs.find((job) => job.id === event.job_id);
      const after = applyJobState(snapshot, event);
      const entering = event.state === "queued" && before?.state !== "queued";
      return renumberQueue(after, entering ? event.job_id : null);
    }
    case "progress":
      return updateJob(snapshot, event.job_id, (job) => ({ ...job, progress: event.progress }));
    case "priority":
      return applyPriority(snapshot, event);
    case "job_added": {
      if (snapshot.jobs.some((job) => job.id === event.job.id)) {
        return updateJob(snapshot, event.job.id, (job) => ({ ...job, ...event.job }));
      }
      const added = { ...snapshot, jobs: [...snapshot.jobs, newJob(event.job)] };
      return renumberQueue(added, event.job.id);
    }
    case "output": {
      const outputs = snapshot.outputs.filter((output) => output.id !== event.output.id);
      return { ...snapshot, outputs: [...outputs, event.output] };
    }
    case "source":
      return { ...snapshot, project: { ...snapshot.project, info: event.info } };
    case "activity": {
      if (snapshot.activity.some((entry) => entry.event_id === event.activity.event_id)) {
        return snapshot;
      }
      const activity = [...snapshot.activity, event.activity].slice(-ACTIVITY_LIMIT);
      return { ...snapshot, activity };
    }
    case "presence":
      return snapshot;
  }
}

const STATE_ORDER: Record<JobState, number> = {
  running: 0,
  queued: 1,
  failed: 2,
  cancelled: 2,
  succeeded: 2,
};

/**
 * Orders jobs as the scheduler runs them: running first, then the queue in order, then
 * finished jobs by creation. The queue follows the server's positions where known, and
 * otherwise higher priority first, then first in, first out.
 */
export function orderJobs(jobs: readonly Job[]): Job[] {
  return [...jobs].sort((a, b) => {
    const byState = STATE_ORDER[a.state] - STATE_ORDER[b.state];
    if (byState !== 0) return byState;
    if (a.state === "queued") {
      const pa = a.queue_position ?? Number.MAX_SAFE_INTEGER;
      const pb = b.queue_position ?? Number.MAX_SAFE_INTEGER;
      if (pa !== pb) return pa - pb;
      if (a.priority !== b.priority) return b.priority - a.priority;
    }
    if (a.kind !== b.kind) return a.kind === "ingest" ? -1 : 1;
    return (a.created_at ?? 0) - (b.created_at ?? 0) || a.id.localeCompare(b.id);
  });
}

export class ProjectStore {
  private state: ProjectState = {
    snapshot: null,
    members: [],
    connection: { kind: "connecting" },
    role: null,
    liveCount: 0,
    fatal: null,
  };
  private readonly listeners = new Set<() => void>();

  get current(): ProjectState {
    return this.state;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(next: Partial<ProjectState>): void {
    this.state = { ...this.state, ...next };
    for (const listener of this.listeners) listener();
  }

  replaceSnapshot(snapshot: Snapshot): void {
    this.set({ snapshot });
  }

  apply(event: ProjectEvent): void {
    if (event.type === "presence") {
      this.set({ members: event.members });
      return;
    }
    if (!this.state.snapshot) return;
    const snapshot = applyEvent(this.state.snapshot, event);
    if (snapshot !== this.state.snapshot) this.set({ snapshot });
  }

  setConnection(connection: ConnectionStatus): void {
    const becameLive = connection.kind === "live" && this.state.connection.kind !== "live";
    this.set({ connection, liveCount: this.state.liveCount + (becameLive ? 1 : 0) });
  }

  setRole(role: Role): void {
    if (role !== this.state.role) this.set({ role });
  }

  setFatal(message: string): void {
    this.set({ fatal: message });
  }
}
