import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, fetchPlatforms, fetchSnapshot, mediaUrl } from "./api";
import { formatBytes, formatDuration } from "./format";
import { loadDisplayName, saveDisplayName, type ProjectLink } from "./links";
import { openSession } from "./realtime";
import { INVALID_LINK, type Command, type Session } from "./session";
import { orderJobs, ProjectStore, type ProjectState } from "./state";
import type { Platform, Snapshot } from "./types";
import { ActivityFeed, ConnectionIndicator, Presence, SharePanel } from "./panels";
import { JobCard } from "./job-card";
import { OutputsSection, RetryingImage } from "./outputs";

function useStore(store: ProjectStore): ProjectState {
  const [state, setState] = useState(store.current);
  useEffect(() => {
    setState(store.current);
    return store.subscribe(() => setState(store.current));
  }, [store]);
  return state;
}

export interface Toast {
  id: number;
  text: string;
  kind: "error" | "info";
}

export function ProjectPage({ link }: { link: ProjectLink }) {
  const store = useMemo(() => new ProjectStore(), [link.projectId, link.token]);
  const [session, setSession] = useState<Session | null>(null);
  const [name, setName] = useState(loadDisplayName);
  const [platforms, setPlatforms] = useState<Map<string, Platform>>(new Map());
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [pending, setPending] = useState<Set<string>>(new Set());
  const state = useStore(store);

  useEffect(() => {
    if (!link.token) {
      store.setFatal("This link has no access token. Ask the project's owner for a share link.");
      return;
    }
    const opened = openSession(link.projectId, link.token, loadDisplayName(), store);
    setSession(opened);
    // The REST snapshot paints the page while the socket connects. The socket's own snapshot
    // replaces it, because only that one anchors the sequence numbers of later frames.
    fetchSnapshot(link.projectId, link.token)
      .then((snapshot) => {
        if (!store.current.snapshot) store.replaceSnapshot(snapshot);
      })
      .catch((error: unknown) => {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          opened.close();
          store.setFatal(INVALID_LINK);
        }
      });
    return () => opened.close();
  }, [store]);

  useEffect(() => {
    fetchPlatforms()
      .then((list) => setPlatforms(new Map(list.platforms.map((platform) => [platform.name, platform]))))
      .catch(() => undefined);
  }, []);

  const showToast = (text: string, kind: Toast["kind"] = "error") => {
    const id = Date.now() + Math.random();
    setToasts((current) => [...current.slice(-2), { id, text, kind }]);
    setTimeout(() => setToasts((current) => current.filter((toast) => toast.id !== id)), 6000);
  };

  const run = async (key: string, command: Command) => {
    if (!session) return;
    setPending((current) => new Set(current).add(key));
    try {
      await session.send(command);
      // The button that was pressed may be gone now (Cancel on a cancelled job), so keyboard
      // focus moves to the job's card instead of falling back to the top of the page.
      requestAnimationFrame(() => {
        if (document.activeElement && document.activeElement !== document.body) return;
        document.querySelector<HTMLElement>(`article[data-job-id="${CSS.escape(key)}"]`)?.focus();
      });
    } catch (error) {
      showToast(error instanceof Error ? error.message : String(error));
    } finally {
      setPending((current) => {
        const next = new Set(current);
        next.delete(key);
        return next;
      });
    }
  };

  const rename = (next: string) => {
    const trimmed = next.trim().slice(0, 40);
    if (!trimmed || trimmed === name) return;
    setName(trimmed);
    saveDisplayName(trimmed);
    session?.rename(trimmed);
  };

  useDocumentTitle(state.snapshot);

  if (state.fatal) {
    return (
      <div class="card fatal" role="alert">
        <h1>This project cannot be opened</h1>
        <p>{state.fatal}</p>
        <a class="button" href="/">Start a new project</a>
      </div>
    );
  }

  const snapshot = state.snapshot;
  const canEdit = state.role === "editor";
  const platformLabel = (name: string) => platforms.get(name)?.label ?? name;

  return (
    <div class={`project${state.connection.kind === "live" ? "" : " stale"}`}>
      <div class="project-head">
        <div class="project-title">
          <h1>{snapshot?.project.title || (snapshot ? "Untitled project" : "Loading project…")}</h1>
          <p class="muted">
            {snapshot
              ? snapshot.project.platforms.map(platformLabel).join(" · ") +
                ` · ${snapshot.project.fill}` +
                (snapshot.project.part_length_s
                  ? ` · parts of ${formatDuration(snapshot.project.part_length_s)}`
                  : "")
              : " "}
            {state.role && <span class={`role-badge ${state.role}`}>{state.role}</span>}
          </p>
        </div>
        <ConnectionIndicator status={state.connection} onRetry={() => session?.retryNow()} />
      </div>

      <div class="project-grid">
        <div class="project-main">
          <SourceCard snapshot={snapshot} token={link.token} liveCount={state.liveCount} />
          <JobsSection
            snapshot={snapshot}
            canEdit={canEdit}
            pending={pending}
            run={run}
            platformLabel={platformLabel}
          />
          <OutputsSection
            snapshot={snapshot}
            token={link.token}
            liveCount={state.liveCount}
            platformLabel={platformLabel}
          />
        </div>
        <aside class="project-side">
          <SharePanel link={link} role={state.role} onCopied={(text) => showToast(text, "info")} />
          <Presence members={state.members} self={name} onRename={rename} />
          <ActivityFeed entries={snapshot?.activity ?? []} />
        </aside>
      </div>

      <div class="toasts" aria-live="assertive">
        {toasts.map((toast) => (
          <div key={toast.id} class={`toast ${toast.kind}`} role={toast.kind === "error" ? "alert" : "status"}>
            {toast.text}
          </div>
        ))}
      </div>
    </div>
  );
}

/** Shows the project and the progress of its running jobs in the browser tab. */
function useDocumentTitle(snapshot: Snapshot | null): void {
  const title = snapshot?.project.title;
  const running = snapshot?.jobs.filter((job) => job.state === "running" && job.progress?.fraction != null) ?? [];
  const percent = running.length
    ? Math.floor((100 * running.reduce((sum, job) => sum + (job.progress?.fraction ?? 0), 0)) / running.length)
    : null;
  useEffect(() => {
    const name = title ? `${title} · ViralSplit` : "ViralSplit";
    document.title = percent != null ? `${percent}% · ${name}` : name;
  }, [title, percent]);
  useEffect(() => () => void (document.title = "ViralSplit"), []);
}

function readNumber(info: Record<string, unknown> | null, ...keys: string[]): number | null {
  if (!info) return null;
  for (const key of keys) {
    let value: unknown = info;
    for (const part of key.split(".")) {
      value = value && typeof value === "object" ? (value as Record<string, unknown>)[part] : undefined;
    }
    if (typeof value === "number" && Number.isFinite(value)) return value;
  }
  return null;
}

function SourceCard(props: { snapshot: Snapshot | null; token: string; liveCount: number }) {
  const { snapshot, token } = props;
  const project = snapshot?.project;
  const info = (project?.info ?? null) as Record<string, unknown> | null;
  const width = readNumber(info, "video.display_width", "display_width", "width");
  const height = readNumber(info, "video.display_height", "display_height", "height");
  const duration = readNumber(info, "duration_s", "duration");
  const size = project?.source?.size_bytes ?? readNumber(info, "size_bytes", "size");
  const fps = frameRate(info);
  const orientation = width && height ? orientationOf(width, height) : null;
  const thumbnail = snapshot ? sourceThumbnail(snapshot, width && height ? width / height : null) : null;
  const shape = width && height ? `${width} / ${height}` : "16 / 9";

  return (
    <section class="card source-card" aria-labelledby="source-title">
      <div class="source-thumb" style={{ aspectRatio: shape }}>
        {thumbnail ? <RetryingImage src={mediaUrl(thumbnail, token)} alt="" liveCount={props.liveCount} /> : <span class="thumb-placeholder" />}
      </div>
      <div class="source-body">
        <h2 id="source-title" class="eyebrow">Source</h2>
        <p class="source-name" title={project?.source?.url ?? project?.source?.name}>
          {project?.source?.name ?? project?.source?.url ?? (snapshot ? "Waiting for the source…" : " ")}
        </p>
        <dl class="facts">
          <div><dt>Duration</dt><dd>{formatDuration(duration)}</dd></div>
          <div><dt>Size</dt><dd>{formatBytes(size)}</dd></div>
          <div><dt>Frame</dt><dd>{width && height ? `${width}×${height}` : "–"}</dd></div>
          <div><dt>Orientation</dt><dd>{orientation ?? "–"}</dd></div>
          {fps ? <div><dt>Frame rate</dt><dd>{fps.toFixed(fps % 1 ? 2 : 0)} fps</dd></div> : null}
        </dl>
      </div>
    </section>
  );
}

function orientationOf(width: number, height: number): string {
  if (width > height) return "Landscape";
  if (width < height) return "Portrait";
  return "Square";
}

/** Reads the average frame rate, which MediaInfo stores as ffprobe's "num/den" text. */
function frameRate(info: Record<string, unknown> | null): number | null {
  const video = info?.video as Record<string, unknown> | undefined;
  const text = video?.avg_frame_rate ?? video?.real_frame_rate;
  if (typeof text !== "string") return null;
  const [num, den] = text.split("/").map(Number);
  const rate = den ? num / den : num;
  return Number.isFinite(rate) && rate > 0 ? rate : null;
}

/**
 * Picks a picture for the source card. The server has no thumbnail of the source itself, so
 * this is the first part's thumbnail of the output whose shape is closest to the source's.
 */
function sourceThumbnail(snapshot: Snapshot, sourceRatio: number | null): string | null {
  const candidates = snapshot.outputs.filter((output) => output.thumbnail_url && output.part === 1);
  const distance = (width: number, height: number) =>
    sourceRatio ? Math.abs(Math.log(width / height / sourceRatio)) : 0;
  candidates.sort((a, b) => distance(a.width, a.height) - distance(b.width, b.height));
  return candidates[0]?.thumbnail_url ?? null;
}

function JobsSection(props: {
  snapshot: Snapshot | null;
  canEdit: boolean;
  pending: Set<string>;
  run: (key: string, command: Command) => void;
  platformLabel: (name: string) => string;
}) {
  const jobs = props.snapshot ? orderJobs(props.snapshot.jobs) : [];
  const queued = jobs.filter((job) => job.state === "queued");
  const active = jobs.some((job) => job.state === "queued" || job.state === "running");
  return (
    <section class="jobs" aria-labelledby="jobs-heading">
      <div class="section-head">
        <h2 id="jobs-heading">Jobs</h2>
        {props.canEdit && active && (
          <button
            type="button"
            class="ghost danger small"
            disabled={props.pending.has("project")}
            onClick={() => props.run("project", { op: "cancel_project" })}
          >
            Cancel all
          </button>
        )}
      </div>
      {!props.snapshot && <div class="card job-card skeleton" aria-hidden="true" />}
      {props.snapshot && jobs.length === 0 && (
        <p class="muted empty">No jobs yet. They appear as soon as the source arrives.</p>
      )}
      <ol class="job-list">
        {jobs.map((job) => (
          <li key={job.id}>
            <JobCard
              job={job}
              queueIndex={job.state === "queued" ? queued.indexOf(job) : null}
              canEdit={props.canEdit}
              pending={props.pending}
              run={props.run}
              platformLabel={props.platformLabel}
            />
          </li>
        ))}
      </ol>
    </section>
  );
}

