// The project state the page renders: the snapshot that GET /api/projects/{id} and the
// socket's snapshot frame carry, updated in place by the socket's event frames.

export type Role = "editor" | "viewer";
export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Progress {
  stage: string; // download, probe, plan, render, thumbnail
  fraction: number | null; // 0..1, null when the total is unknown
  frames?: number | null;
  fps?: number | null;
  speed?: number | null; // multiple of real time
  eta_s?: number | null;
  out_time_s?: number | null;
  bytes_done?: number | null;
  bytes_total?: number | null;
  bytes_per_s?: number | null;
}

export interface MediaInfo {
  [key: string]: unknown;
}

export interface Source {
  kind: "upload" | "url";
  name: string;
  url?: string;
  size_bytes?: number | null;
}

export interface Project {
  id: string;
  title: string;
  platforms: string[];
  fill: string;
  part_length_s: number | null;
  created_at: number;
  source: Source | null;
  info: MediaInfo | null;
}

export interface Job {
  id: string;
  kind: string; // ingest or render
  label: string;
  platforms: string[];
  state: JobState;
  priority: number;
  attempt: number;
  error: string | null;
  created_at: number | null;
  started_at: number | null;
  ended_at: number | null;
  progress: Progress | null;
  queue_position: number | null;
}

export interface Output {
  id: string;
  job_id: string;
  platform: string;
  part: number;
  parts: number;
  width: number;
  height: number;
  duration_s: number;
  size_bytes: number;
  url: string;
  thumbnail_url: string | null;
}

export interface Activity {
  event_id: number;
  at: number; // Unix time, seconds
  actor: string;
  action: string;
  text: string;
  job_id?: string | null;
}

export interface Snapshot {
  project: Project;
  jobs: Job[];
  outputs: Output[];
  activity: Activity[];
}

export interface Member {
  name: string;
  role: Role;
  id?: string;
}

export interface Platform {
  name: string;
  label: string;
  width: number;
  height: number;
  max_fps?: number;
  max_clip_s?: number | null;
}

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(["succeeded", "failed", "cancelled"]);
