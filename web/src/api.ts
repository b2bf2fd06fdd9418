// REST calls: project creation, the upload, the platform list and media URLs.
// Live state and job commands go over the socket (realtime.ts), not through here.

import type { Platform, Snapshot } from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null = null,
    readonly field: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Reads the message of an error response, whichever of the usual JSON shapes it has. */
function errorFromBody(status: number, text: string): ApiError {
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: the text itself is the best message there is.
  }
  if (body && typeof body === "object") {
    const record = body as Record<string, unknown>;
    const inner =
      record.error && typeof record.error === "object"
        ? (record.error as Record<string, unknown>)
        : record;
    const message =
      (typeof inner.message === "string" && inner.message) ||
      (typeof record.error === "string" && record.error) ||
      (typeof inner.detail === "string" && inner.detail) ||
      "";
    const code = typeof inner.code === "string" ? inner.code : null;
    const field = typeof inner.field === "string" ? inner.field : null;
    if (message) return new ApiError(message, status, code, field);
  }
  const fallback = text.trim().slice(0, 300) || `request failed with HTTP ${status}`;
  return new ApiError(fallback, status);
}

async function request<T>(
  method: string,
  path: string,
  options: { token?: string | null; json?: unknown; displayName?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  // Header values are Latin-1, so other names stay out and the server uses its default.
  if (options.displayName && /^[\x20-\x7e]+$/.test(options.displayName)) {
    headers["X-Viralsplit-Name"] = options.displayName;
  }
  let body: string | undefined;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError("The server cannot be reached. Check that it is running and try again.", 0);
  }
  const text = await response.text();
  if (!response.ok) throw errorFromBody(response.status, text);
  return (text ? JSON.parse(text) : null) as T;
}

export interface PlatformList {
  platforms: Platform[];
  /** Names the server suggests when the user has not chosen. */
  defaults: string[];
}

export async function fetchPlatforms(): Promise<PlatformList> {
  const body = await request<{ platforms: Record<string, unknown>[]; default?: string[] }>(
    "GET",
    "/api/platforms",
  );
  const platforms = body.platforms.map((entry) => ({
    name: String(entry.name ?? entry.id),
    label: String(entry.label ?? entry.name),
    width: Number(entry.width),
    height: Number(entry.height),
    max_fps: entry.max_fps as number | undefined,
    max_clip_s: (entry.max_clip_s as number | null | undefined) ?? null,
  }));
  return { platforms, defaults: body.default ?? [] };
}

export interface NewProject {
  title: string;
  platforms: string[];
  fill: string;
  /** Maximum part length in seconds; null for the server's default. */
  part_length: number | null;
  url?: string;
}

export interface CreatedProject {
  id: string;
  editorToken: string;
  viewerToken: string;
}

export async function createProject(project: NewProject, displayName?: string): Promise<CreatedProject> {
  const body = await request<{ id: string; editor_token: string; viewer_token: string }>(
    "POST",
    "/api/projects",
    { json: project, displayName },
  );
  return { id: body.id, editorToken: body.editor_token, viewerToken: body.viewer_token };
}

export function fetchSnapshot(projectId: string, token: string): Promise<Snapshot> {
  return request<Snapshot>("GET", `/api/projects/${encodeURIComponent(projectId)}`, { token });
}

export interface UploadProgress {
  loaded: number;
  total: number;
  bytesPerSecond: number | null;
}

export interface Upload {
  done: Promise<void>;
  abort: () => void;
}

/**
 * Uploads the source file with XMLHttpRequest, because fetch() reports no upload progress.
 * The speed is averaged over the last few seconds so that the number shown stays readable.
 */
export function uploadSource(
  projectId: string,
  token: string,
  file: File,
  displayName: string,
  onProgress: (progress: UploadProgress) => void,
): Upload {
  const xhr = new XMLHttpRequest();
  const samples: { at: number; loaded: number }[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const name = encodeURIComponent(file.name);
    xhr.open("PUT", `/api/projects/${encodeURIComponent(projectId)}/source?name=${name}`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    // The activity feed names the uploader. Header values must be Latin-1, so other names
    // are left out and the server writes "an editor".
    if (/^[\x20-\x7e]+$/.test(displayName)) xhr.setRequestHeader("X-Viralsplit-Name", displayName);
    xhr.upload.onprogress = (event) => {
      const now = performance.now();
      samples.push({ at: now, loaded: event.loaded });
      while (samples.length > 2 && now - samples[0].at > 3000) samples.shift();
      const first = samples[0];
      const elapsed = (now - first.at) / 1000;
      onProgress({
        loaded: event.loaded,
        total: event.lengthComputable ? event.total : file.size,
        bytesPerSecond: elapsed > 0.2 ? (event.loaded - first.loaded) / elapsed : null,
      });
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(errorFromBody(xhr.status, xhr.responseText));
    };
    xhr.onerror = () =>
      reject(new ApiError("The upload failed: the connection to the server was lost.", 0));
    xhr.onabort = () => reject(new ApiError("Upload cancelled.", 0, "aborted"));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/** Adds the token as a query parameter, which the server accepts for media URLs only. */
export function mediaUrl(url: string, token: string, extra: Record<string, string> = {}): string {
  if (url.startsWith("data:")) return url;
  const target = new URL(url, window.location.origin);
  target.searchParams.set("token", token);
  for (const [key, value] of Object.entries(extra)) target.searchParams.set(key, value);
  return target.pathname + target.search;
}
