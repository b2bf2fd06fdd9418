import { useEffect, useState } from "preact/hooks";
import { mediaUrl } from "./api";
import { formatBytes, formatDuration } from "./format";
import type { Output, Snapshot } from "./types";

function groupByPlatform(outputs: Output[]): [string, Output[]][] {
  const groups = new Map<string, Output[]>();
  for (const output of outputs) {
    const group = groups.get(output.platform) ?? [];
    group.push(output);
    groups.set(output.platform, group);
  }
  for (const group of groups.values()) group.sort((a, b) => a.part - b.part);
  return [...groups.entries()];
}

/**
 * Starts one download per part, spaced out because browsers drop clicks on several
 * download links made in the same moment.
 */
function downloadAll(outputs: Output[], token: string): void {
  outputs.forEach((output, index) => {
    setTimeout(() => {
      const anchor = document.createElement("a");
      anchor.href = mediaUrl(output.url, token, { download: "1" });
      anchor.download = "";
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
    }, index * 400);
  });
}

function partsSummary(ready: number, total: number): string {
  if (total <= 1) return "";
  if (ready === total) return ` · ${total} parts`;
  return ` · ${ready} of ${total} parts`;
}

export function OutputsSection(props: {
  snapshot: Snapshot | null;
  token: string;
  liveCount: number;
  platformLabel: (name: string) => string;
}) {
  const outputs = props.snapshot?.outputs ?? [];
  const order = props.snapshot?.project.platforms ?? [];
  const groups = groupByPlatform(outputs).sort(
    ([a], [b]) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99),
  );
  return (
    <section class="outputs" aria-labelledby="outputs-heading">
      <div class="section-head">
        <h2 id="outputs-heading">Clips</h2>
        <span class="muted">{outputs.length ? `${outputs.length} ready` : ""}</span>
      </div>
      {groups.length === 0 && (
        <p class="muted empty">Finished clips appear here, ready to play and download.</p>
      )}
      <div class="platform-groups">
        {groups.map(([platform, parts]) => (
          <div class="card platform-group" key={platform} data-platform={platform}>
            <div class="card-head">
              <h3>
                {props.platformLabel(platform)}
                <span class="muted"> · {parts[0].width}×{parts[0].height}
                  {partsSummary(parts.length, parts[0].parts)}</span>
              </h3>
              {parts.length > 1 && (
                <button type="button" class="small" onClick={() => downloadAll(parts, props.token)}>
                  Download all
                </button>
              )}
            </div>
            <div class="clip-grid">
              {parts.map((output) => (
                <Clip key={output.id} output={output} token={props.token} liveCount={props.liveCount}
                  title={`${props.platformLabel(platform)}${output.parts > 1 ? ` part ${output.part}` : ""}`} />
              ))}
            </div>
          </div>
        ))}
      </div>
    </section>
  );
}

/**
 * Renders an image that loads again after the socket reconnects if it failed before, because
 * a thumbnail that was requested while the server was down otherwise stays broken.
 */
export function RetryingImage(props: { src: string; alt: string; class?: string; liveCount: number }) {
  const [failedAt, setFailedAt] = useState<number | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (failedAt != null && props.liveCount > failedAt) {
      setFailedAt(null);
      setAttempt((value) => value + 1);
    }
  }, [props.liveCount, failedAt]);
  const src = attempt > 0 ? `${props.src}${props.src.includes("?") ? "&" : "?"}attempt=${attempt}` : props.src;
  return <img src={src} alt={props.alt} class={props.class} onError={() => setFailedAt(props.liveCount)} />;
}

function Clip(props: { output: Output; token: string; title: string; liveCount: number }) {
  const { output, token, title } = props;
  const [playing, setPlaying] = useState(false);
  const thumbnail = output.thumbnail_url ? mediaUrl(output.thumbnail_url, token) : undefined;
  return (
    <figure class="clip" data-output-id={output.id}>
      <div class="clip-media" style={{ aspectRatio: `${output.width} / ${output.height}` }}>
        {playing ? (
          <video
            src={mediaUrl(output.url, token)}
            poster={thumbnail}
            controls
            autoPlay
            playsInline
            preload="metadata"
            aria-label={`${title} player`}
          />
        ) : (
          <button type="button" class="play" onClick={() => setPlaying(true)} aria-label={`Play ${title}`}>
            {thumbnail ? (
              <RetryingImage src={thumbnail} alt={`${title} thumbnail`} class="clip-thumb" liveCount={props.liveCount} />
            ) : (
              <span class="thumb-placeholder" />
            )}
            <span class="play-icon" aria-hidden="true" />
          </button>
        )}
      </div>
      <figcaption>
        <span class="clip-title">
          {output.parts > 1 ? `Part ${output.part} of ${output.parts}` : "Full video"}
        </span>
        <span class="muted">
          {formatDuration(output.duration_s)} · {formatBytes(output.size_bytes)}
        </span>
        <a class="button small" href={mediaUrl(output.url, token, { download: "1" })} download
          aria-label={`Download ${title}`}>
          Download
        </a>
      </figcaption>
    </figure>
  );
}
