import { useEffect, useState } from "preact/hooks";
import { formatClock } from "./format";
import { editorLink, viewerLink, type ProjectLink } from "./links";
import type { ConnectionStatus } from "./state";
import type { Activity, Member, Role } from "./types";

export function ConnectionIndicator({ status, onRetry }: { status: ConnectionStatus; onRetry: () => void }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (status.kind !== "reconnecting") return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [status]);

  let text: string;
  switch (status.kind) {
    case "connecting":
      text = "Connecting…";
      break;
    case "live":
      text = "Live";
      break;
    case "reconnecting": {
      const seconds = Math.max(0, Math.ceil((status.retryAt - now) / 1000));
      text = seconds > 0 ? `Reconnecting in ${seconds} s…` : "Reconnecting…";
      break;
    }
    case "closed":
      text = `Disconnected: ${status.reason}`;
      break;
  }
  return (
    <div
      class={`connection ${status.kind}`}
      role="status"
      aria-live="polite"
      data-connection={status.kind}
      data-resumed={status.kind === "live" ? String(status.resumed) : undefined}
      title={status.kind === "live" && status.resumed ? "Reconnected and caught up on every missed update" : undefined}
    >
      <span class="dot" aria-hidden="true" />
      <span class="connection-text">{text}</span>
      {status.kind === "reconnecting" && status.retryAt - now > 1500 && (
        <button type="button" class="link" onClick={onRetry}>Retry now</button>
      )}
    </div>
  );
}

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  // Array.from splits by code point, so an emoji or other astral character stays whole.
  const first = (word: string) => Array.from(word)[0] ?? "";
  const letters = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : Array.from(parts[0] ?? "").slice(0, 2).join("");
  return letters.toUpperCase();
}

/** Returns a hue derived from the name, so a person keeps the same colour on every page. */
function hueOf(name: string): number {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) | 0;
  return Math.abs(hash) % 360;
}

export function Presence(props: { members: Member[]; self: string; onRename: (name: string) => void }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(props.self);
  return (
    <section class="card side-card presence" aria-labelledby="presence-heading">
      <div class="card-head">
        <h2 id="presence-heading">Watching now</h2>
        <span class="count muted">{props.members.length}</span>
      </div>
      <ul class="members">
        {props.members.map((member, index) => (
          <li key={member.id ?? `${member.name}-${index}`} class="member">
            <span class="avatar" style={{ background: `hsl(${hueOf(member.name)} 65% 45%)` }} aria-hidden="true">
              {initials(member.name)}
            </span>
            <span class="member-name">{member.name}</span>
            <span class={`role-badge ${member.role}`}>{member.role}</span>
          </li>
        ))}
        {props.members.length === 0 && <li class="muted">Nobody yet.</li>}
      </ul>
      {editing ? (
        <form
          class="rename"
          onSubmit={(event) => {
            event.preventDefault();
            props.onRename(draft);
            setEditing(false);
          }}
        >
          <label for="display-name" class="visually-hidden">Your display name</label>
          <input id="display-name" value={draft} maxLength={40} autoFocus
            onInput={(event) => setDraft(event.currentTarget.value)} />
          <button type="submit" class="small">Save</button>
        </form>
      ) : (
        <p class="you muted">
          You appear as <strong>{props.self}</strong>.{" "}
          <button type="button" class="link" onClick={() => {
            setDraft(props.self);
            setEditing(true);
          }}>Change</button>
        </p>
      )}
    </section>
  );
}

export function ActivityFeed({ entries }: { entries: Activity[] }) {
  const newestFirst = [...entries].reverse();
  return (
    <section class="card side-card activity" aria-labelledby="activity-heading">
      <h2 id="activity-heading">Activity</h2>
      <ol class="activity-list" aria-live="polite">
        {newestFirst.map((entry) => (
          <li key={entry.event_id} data-action={entry.action}>
            <time dateTime={new Date(entry.at * 1000).toISOString()}>{formatClock(entry.at)}</time>
            <span class="activity-text">{entry.text}</span>
          </li>
        ))}
        {entries.length === 0 && <li class="muted">Nothing has happened yet.</li>}
      </ol>
    </section>
  );
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

export function SharePanel(props: {
  link: ProjectLink;
  role: Role | null;
  onCopied: (message: string) => void;
}) {
  const { link } = props;
  // Until the server confirms the role, an editor link is recognised by the viewer token it
  // carries. This guess only picks which links to offer; job controls wait for the server.
  const role = props.role ?? (link.viewerToken ? "editor" : "viewer");
  const [shown, setShown] = useState<string | null>(null);
  const viewer =
    role === "viewer" ? viewerLink(link.projectId, link.token)
      : link.viewerToken ? viewerLink(link.projectId, link.viewerToken) : null;
  const editor = role === "editor" ? editorLink(link.projectId, link.token, link.viewerToken) : null;

  const copy = async (label: string, url: string) => {
    if (await copyText(url)) {
      setShown(null);
      props.onCopied(`${label} link copied.`);
    } else {
      // The clipboard needs permission or a secure page; show the link to copy by hand.
      setShown(url);
    }
  };

  return (
    <section class="card side-card share" aria-labelledby="share-heading">
      <h2 id="share-heading">Share</h2>
      <p class="muted small-text">
        {role === "editor"
          ? "Editors can cancel and reorder jobs. Viewers only watch."
          : "You are watching. Editors can cancel and reorder jobs."}
      </p>
      <div class="share-buttons">
        {editor && (
          <button type="button" class="small" onClick={() => copy("Editor", editor)}>
            Copy editor link
          </button>
        )}
        {viewer && (
          <button type="button" class="small" onClick={() => copy("Viewer", viewer)}>
            Copy viewer link
          </button>
        )}
      </div>
      {shown && (
        <input class="share-url" readOnly value={shown} aria-label="Link to copy"
          ref={(input) => input?.select()} />
      )}
    </section>
  );
}
