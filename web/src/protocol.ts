// Frames of the realtime protocol, version 1 (docs/protocol.md): MessagePack values in binary
// WebSocket messages. Named frames are maps with a "t" key; the frequent ones (progress,
// heartbeat) are arrays whose first element is a type code. This module only translates
// between bytes and typed values; the connection logic lives in realtime.ts.

import { decode, encode } from "@msgpack/msgpack";
import type { Activity, JobState, Member, Output, Progress, Role, Snapshot } from "./types";

export const PROTOCOL_VERSION = 1;

const STAGES_BY_CODE: Record<number, string> = { 1: "probe", 2: "plan", 3: "render", 4: "thumbnail" };

export type ClientFrame =
  | { t: "hello"; id: number; versions: number[]; name: string; tokens: string[] }
  | { t: "subscribe"; id: number; project: string; token?: string; seq?: number; epoch?: string }
  | { t: "unsubscribe"; id: number; project: string }
  | { t: "cancel"; id: number; project: string; job?: string }
  | { t: "set_priority"; id: number; project: string; job: string; priority: number }
  | { t: "retry"; id: number; project: string; job: string }
  | { t: "ping"; id: number };

export interface SnapshotJob {
  id: string;
  n?: number;
}

export type ServerFrame =
  | { t: "heartbeat" }
  | { t: "welcome"; id: number; version: number; conn: string; heartbeat_s: number }
  | { t: "ack"; id: number; project?: string; ch?: number; role?: Role; resumed?: boolean }
  | { t: "error"; id: number | null; code: string; message: string }
  | {
      t: "snapshot";
      ch: number;
      seq: number;
      epoch: string;
      project: string;
      state: Snapshot & { jobs: (Snapshot["jobs"][number] & { n?: number })[] };
      presence: Member[];
    }
  | {
      t: "job";
      ch: number;
      seq: number;
      job: string;
      n: number;
      state: JobState;
      error: string | null;
      priority: number;
      attempt: number;
    }
  | {
      t: "job_added";
      ch: number;
      seq: number;
      job: string;
      n: number;
      kind: string;
      label: string;
      priority: number;
    }
  | { t: "priority"; ch: number; seq: number; job: string; n: number; priority: number; queue: string[] }
  | { t: "output"; ch: number; seq: number; output: Output }
  | { t: "source"; ch: number; seq: number; info: Record<string, unknown> }
  | { t: "presence"; ch: number; seq: number; viewers: Member[] }
  | { t: "activity"; ch: number; seq: number; activity: Activity }
  | { t: "progress"; ch: number; seq: number; n: number; progress: Progress }
  | { t: "unknown"; ch?: number; seq?: number };

export function encodeFrame(frame: ClientFrame): Uint8Array<ArrayBuffer> {
  return encode(frame) as Uint8Array<ArrayBuffer>;
}

function scaled(value: unknown, divisor: number): number | null {
  return typeof value === "number" ? value / divisor : null;
}

function integer(value: unknown): number | null {
  return typeof value === "number" ? value : null;
}

/** Decodes a compact progress array: type 1 for processing stages, type 2 for downloads. */
function decodeProgress(items: unknown[]): ServerFrame {
  const [type, ch, seq, n] = items as number[];
  if (type === 1) {
    const progress: Progress = {
      stage: STAGES_BY_CODE[items[4] as number] ?? "render",
      fraction: scaled(items[5], 10000),
      fps: scaled(items[6], 10),
      speed: scaled(items[7], 100),
      eta_s: integer(items[8]),
    };
    return { t: "progress", ch, seq, n, progress };
  }
  const progress: Progress = {
    stage: "download",
    fraction: scaled(items[4], 10000),
    bytes_done: integer(items[5]),
    bytes_total: integer(items[6]),
    bytes_per_s: integer(items[7]),
    eta_s: integer(items[8]),
  };
  return { t: "progress", ch, seq, n, progress };
}

/** Decodes one binary message; frames of an unknown shape come back as type "unknown". */
export function decodeFrame(data: ArrayBuffer | Uint8Array): ServerFrame {
  const value = decode(data instanceof Uint8Array ? data : new Uint8Array(data));
  if (Array.isArray(value)) {
    if (value[0] === 0) return { t: "heartbeat" };
    if ((value[0] === 1 || value[0] === 2) && value.length >= 9) return decodeProgress(value);
    return { t: "unknown", ch: value[1] as number, seq: value[2] as number };
  }
  if (value && typeof value === "object" && typeof (value as { t?: unknown }).t === "string") {
    return value as ServerFrame;
  }
  return { t: "unknown" };
}

/** Close codes after which reconnecting with the same link would fail again. */
export function isFinalClose(code: number): boolean {
  return (code >= 4400 && code <= 4499) || code === 1009;
}

export function describeClose(code: number): string {
  switch (code) {
    case 4400:
      return "the server closed the connection after too many malformed frames";
    case 4406:
      return "this page speaks a protocol version the server does not support; reload the page";
    case 4408:
      return "the connection was not set up in time";
    case 1009:
      return "a message was too big for the server";
    default:
      return `the connection was closed (code ${code})`;
  }
}
