import type { Command } from "./session";
import { formatBytes, formatDuration, formatPercent, formatRate } from "./format";
import type { Job, Progress } from "./types";

const STAGE_LABELS: Record<string, string> = {
  download: "Downloading",
  probe: "Probing",
  plan: "Planning",
  render: "Rendering",
  thumbnail: "Thumbnail",
};

const STATE_LABELS: Record<Job["state"], string> = {
  queued: "Queued",
  running: "Running",
  succeeded: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

function jobTitle(job: Job, platformLabel: (name: string) => string): string {
  if (job.kind === "ingest") return "Prepare the source";
  if (job.label) return job.label;
  return job.platforms.map(platformLabel).join(", ") || "Render";
}

/** Lists the facts shown under a bar; the line is always present so the card keeps its height. */
function progressFacts(job: Job, progress: Progress | null): string[] {
  if (job.state === "queued") return ["Waiting for a free encoder"];
  if (job.state === "cancelled") {
    // A job cancelled while queued never wrote anything, so only a started one had files to remove.
    return [job.started_at ? "Stopped; partial files were removed" : "Cancelled before it started"];
  }
  if (job.state === "succeeded") {
    const took = job.started_at && job.ended_at ? job.ended_at - job.started_at : null;
    return [took != null ? `Finished in ${formatDuration(took)}` : "Finished"];
  }
  if (!progress) return job.state === "running" ? ["Starting…"] : [""];
  const facts: string[] = [];
  if (progress.bytes_done != null) {
    facts.push(
      progress.bytes_total != null
        ? `${formatBytes(progress.bytes_done)} of ${formatBytes(progress.bytes_total)}`
        : `${formatBytes(progress.bytes_done)}`,
    );
    if (progress.bytes_per_s != null) facts.push(formatRate(progress.bytes_per_s));
  }
  if (progress.fps != null) facts.push(`${Math.round(progress.fps)} fps`);
  if (progress.speed != null) facts.push(`${progress.speed.toFixed(progress.speed < 10 ? 1 : 0)}×`);
  facts.push(progress.eta_s != null ? `ETA ${formatDuration(progress.eta_s)}` : "ETA –");
  return facts;
}

function percentLabel(job: Job, fraction: number | null): string {
  if (job.state === "running" || job.state === "succeeded") return formatPercent(fraction);
  if (job.state === "queued") return "0%";
  return "–";
}

export function JobCard(props: {
  job: Job;
  queueIndex: number | null;
  canEdit: boolean;
  pending: Set<string>;
  run: (key: string, command: Command) => void;
  platformLabel: (name: string) => string;
}) {
  const { job, canEdit, pending, run } = props;
  const progress = job.progress;
  let fraction: number | null = null;
  if (job.state === "succeeded") fraction = 1;
  else if (job.state === "running") fraction = progress?.fraction ?? null;
  const showBar = job.state === "running" || job.state === "succeeded";
  const title = jobTitle(job, props.platformLabel);
  const stage =
    job.state === "running" && progress ? (STAGE_LABELS[progress.stage] ?? progress.stage) : null;
  const busy = pending.has(job.id);
  const active = job.state === "queued" || job.state === "running";
  const retryable = job.state === "failed" || job.state === "cancelled";

  return (
    <article
      class={`card job-card state-${job.state}`}
      data-job-id={job.id}
      data-state={job.state}
      data-kind={job.kind}
      tabIndex={-1}
      aria-label={`${title}: ${STATE_LABELS[job.state]}`}
    >
      <header class="job-head">
        <div class="job-title">
          <h3>{title}</h3>
          <p class="job-sub muted">
            <span class="stage">{stage ?? (job.kind === "ingest" ? "Ingest" : "Render")}</span>
            {" · "}
            <span class="priority">Priority {job.priority}</span>
            {props.queueIndex != null && (
              <span class="queue-position"> · #{props.queueIndex + 1} in queue</span>
            )}
            {job.attempt > 1 && <span> · attempt {job.attempt}</span>}
          </p>
        </div>
        <span class={`badge ${job.state}`}>{STATE_LABELS[job.state]}</span>
      </header>

      <div class="progress-row">
        {showBar ? (
          <progress
            max={1}
            value={fraction ?? undefined}
            aria-label={`${title} progress`}
            aria-valuetext={fraction != null ? formatPercent(fraction) : "in progress, total unknown"}
          />
        ) : (
          <progress class={`idle ${job.state}`} max={1} value={job.state === "queued" ? 0 : fraction ?? 0}
            aria-label={`${title} progress`} />
        )}
        <span class="percent">{percentLabel(job, fraction)}</span>
      </div>
      <p class="job-facts muted">{progressFacts(job, progress).join(" · ") || " "}</p>
      {job.state === "failed" && job.error && <p class="error-text job-error">{job.error}</p>}

      {canEdit && (active || retryable) && (
        <div class="job-actions">
          {active && (
            <div class="priority-buttons" role="group" aria-label="Priority">
              <button type="button" class="ghost small" disabled={busy}
                aria-label={`Raise priority of ${title}`}
                onClick={() => run(job.id, { op: "set_priority", job_id: job.id, priority: job.priority + 1 })}>
                ▲ Priority
              </button>
              <button type="button" class="ghost small" disabled={busy}
                aria-label={`Lower priority of ${title}`}
                onClick={() => run(job.id, { op: "set_priority", job_id: job.id, priority: job.priority - 1 })}>
                ▼
              </button>
            </div>
          )}
          <span class="spacer" />
          {active && (
            <button type="button" class="ghost danger small" disabled={busy}
              aria-label={`Cancel ${title}`}
              onClick={() => run(job.id, { op: "cancel", job_id: job.id })}>
              Cancel
            </button>
          )}
          {retryable && (
            <button type="button" class="ghost small" disabled={busy}
              aria-label={`Retry ${title}`}
              onClick={() => run(job.id, { op: "retry", job_id: job.id })}>
              Retry
            </button>
          )}
        </div>
      )}
    </article>
  );
}
