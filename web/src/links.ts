// Project links and the tokens they carry. Tokens travel in the URL fragment, which browsers
// never send to the server, so they stay out of access logs. An editor link also carries the
// viewer token, so that an editor can hand out a viewer link.

export interface ProjectLink {
  projectId: string;
  token: string;
  viewerToken: string | null;
}

const PROJECT_PATH = /^\/p\/([A-Za-z0-9_-]+)\/?$/;

export function parseProjectLink(location: Location): ProjectLink | null {
  const match = PROJECT_PATH.exec(location.pathname);
  if (!match) return null;
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const projectId = match[1];
  const remembered = rememberedTokens(projectId);
  const token = fragment.get("token") ?? remembered?.editor ?? "";
  const viewerToken = fragment.get("viewer") ?? remembered?.viewer ?? null;
  return { projectId, token, viewerToken };
}

export function editorLink(projectId: string, editorToken: string, viewerToken: string | null) {
  const fragment = new URLSearchParams({ token: editorToken });
  if (viewerToken) fragment.set("viewer", viewerToken);
  return `${window.location.origin}/p/${projectId}#${fragment}`;
}

export function viewerLink(projectId: string, viewerToken: string) {
  return `${window.location.origin}/p/${projectId}#${new URLSearchParams({ token: viewerToken })}`;
}

interface StoredTokens {
  editor: string;
  viewer: string;
}

function storageKey(projectId: string) {
  return `viralsplit.tokens.${projectId}`;
}

/** Keeps the creator's tokens in this browser, so the project opens again without the link. */
export function rememberTokens(projectId: string, tokens: StoredTokens): void {
  try {
    localStorage.setItem(storageKey(projectId), JSON.stringify(tokens));
  } catch {
    // Storage can be full or disabled; the link in the address bar still works.
  }
}

function rememberedTokens(projectId: string): StoredTokens | null {
  try {
    const raw = localStorage.getItem(storageKey(projectId));
    return raw ? (JSON.parse(raw) as StoredTokens) : null;
  } catch {
    return null;
  }
}

const NAME_KEY = "viralsplit.name";

/** Returns the display name others see in presence and activity, generating one on first use. */
export function loadDisplayName(): string {
  try {
    const saved = localStorage.getItem(NAME_KEY);
    if (saved) return saved;
  } catch {
    // Fall through to a generated name.
  }
  const name = `Guest ${Math.floor(1000 + Math.random() * 9000)}`;
  saveDisplayName(name);
  return name;
}

export function saveDisplayName(name: string): void {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // The name then lasts only for this page.
  }
}
