import { useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  createProject,
  fetchPlatforms,
  uploadSource,
  type Upload,
  type UploadProgress,
} from "./api";
import { navigate } from "./app";
import { aspectRatio, formatBytes, formatDuration, formatPercent, formatRate } from "./format";
import { editorLink, loadDisplayName, rememberTokens } from "./links";
import type { Platform } from "./types";

type SourceMode = "file" | "url";
type Field = "source" | "platforms" | "part_length" | "title" | "form";
type Errors = Partial<Record<Field, string>>;

const FILL_MODES = [
  { value: "crop", label: "Crop", hint: "Fill the frame, trim the sides" },
  { value: "blur", label: "Blur", hint: "Whole picture on a blurred copy" },
  { value: "pad", label: "Pad", hint: "Whole picture with bars" },
];

function stripExtension(name: string): string {
  return name.replace(/\.[^.]+$/, "");
}

/** Makes a title from a link: its file name when the path ends in one, else the host and path. */
function titleFromUrl(text: string): string {
  try {
    const url = new URL(text);
    const last = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    if (/\.[A-Za-z0-9]{2,5}$/.test(last)) return stripExtension(last);
    return (url.hostname + url.pathname).replace(/\/$/, "");
  } catch {
    return text;
  }
}

/** Maps an API error to the form field it concerns, so the message shows next to it. */
function fieldOfError(error: ApiError, mode: SourceMode): Field {
  const field = (error.field ?? "").toLowerCase();
  if (field.includes("platform")) return "platforms";
  if (field.includes("part")) return "part_length";
  if (field.includes("title")) return "title";
  if (field.includes("url") || field.includes("source") || field.includes("file")) return "source";
  if (error.status === 413 || error.status === 415) return "source";
  const text = error.message.toLowerCase();
  if (text.includes("platform")) return "platforms";
  if (text.includes("part length") || text.includes("part_length")) return "part_length";
  if (mode === "url" && (text.includes("url") || text.includes("link"))) return "source";
  if (text.includes("video") || text.includes("file") || text.includes("too large")) return "source";
  return "form";
}

export function NewProjectPage() {
  const [platforms, setPlatforms] = useState<Platform[] | null>(null);
  const [platformsError, setPlatformsError] = useState<string | null>(null);
  const [mode, setMode] = useState<SourceMode>("file");
  const [file, setFile] = useState<File | null>(null);
  const [url, setUrl] = useState("");
  const [title, setTitle] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [fill, setFill] = useState("crop");
  const [partLength, setPartLength] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const [upload, setUpload] = useState<UploadProgress | null>(null);
  const [dragging, setDragging] = useState(false);
  const uploadRef = useRef<Upload | null>(null);

  useEffect(() => {
    fetchPlatforms()
      .then((list) => {
        setPlatforms(list.platforms);
        setChosen((current) => (current.length > 0 ? current : list.defaults));
      })
      .catch((error: Error) => setPlatformsError(error.message));
    return () => uploadRef.current?.abort();
  }, []);

  const pickFile = (picked: File | null | undefined) => {
    if (!picked) return;
    setFile(picked);
    setErrors((current) => ({ ...current, source: undefined }));
  };

  const togglePlatform = (name: string) => {
    setChosen((current) =>
      current.includes(name) ? current.filter((item) => item !== name) : [...current, name],
    );
    setErrors((current) => ({ ...current, platforms: undefined }));
  };

  const validate = (): Errors => {
    const found: Errors = {};
    if (mode === "file" && !file) found.source = "Choose a video file or drop one here.";
    if (mode === "url") {
      const trimmed = url.trim();
      if (!trimmed) found.source = "Paste a link to a video.";
      else if (!/^https?:\/\/\S+$/i.test(trimmed)) {
        found.source = "The link must start with http:// or https://.";
      }
    }
    if (chosen.length === 0) found.platforms = "Pick at least one platform.";
    if (partLength.trim()) {
      const seconds = Number(partLength);
      if (!Number.isInteger(seconds) || seconds < 1) {
        found.part_length = "Enter the part length in whole seconds (1 or more), or leave it empty.";
      }
    }
    return found;
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (busy) return;
    const found = validate();
    setErrors(found);
    if (Object.keys(found).length > 0) return;

    setBusy(true);
    const defaultTitle = mode === "file" ? stripExtension(file!.name) : titleFromUrl(url.trim());
    try {
      const created = await createProject({
        title: title.trim() || defaultTitle,
        platforms: chosen,
        fill,
        part_length: partLength.trim() ? Number(partLength) : null,
        ...(mode === "url" ? { url: url.trim() } : {}),
      }, loadDisplayName());
      rememberTokens(created.id, { editor: created.editorToken, viewer: created.viewerToken });
      if (mode === "file") {
        setUpload({ loaded: 0, total: file!.size, bytesPerSecond: null });
        const running = uploadSource(created.id, created.editorToken, file!, loadDisplayName(), setUpload);
        uploadRef.current = running;
        await running.done;
        uploadRef.current = null;
      }
      const link = new URL(editorLink(created.id, created.editorToken, created.viewerToken));
      navigate(link.pathname + link.hash);
    } catch (caught) {
      uploadRef.current = null;
      setUpload(null);
      setBusy(false);
      if (caught instanceof ApiError) {
        if (caught.code === "aborted") {
          setErrors({ source: "Upload cancelled. Nothing was kept; choose Create clips to start again." });
        } else {
          setErrors({ [fieldOfError(caught, mode)]: caught.message });
        }
      } else {
        setErrors({ form: String(caught) });
      }
    }
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    if (busy) return;
    setMode("file");
    pickFile(event.dataTransfer?.files?.[0]);
  };

  return (
    <form class="new-project" onSubmit={submit} noValidate aria-busy={busy}>
      <div class="intro">
        <h1>Turn one video into clips for every platform</h1>
        <p class="muted">
          Upload a file or paste a link, pick where it goes, and watch every render live.
        </p>
      </div>

      <section class="card" aria-labelledby="source-heading">
        <div class="card-head">
          <h2 id="source-heading">Source</h2>
          <div class="segmented" role="radiogroup" aria-label="Source type">
            {(["file", "url"] as const).map((value) => (
              <label key={value} class={mode === value ? "active" : ""}>
                <input
                  type="radio"
                  name="source-mode"
                  value={value}
                  checked={mode === value}
                  disabled={busy}
                  onChange={() => {
                    setMode(value);
                    setErrors((current) => ({ ...current, source: undefined }));
                  }}
                />
                {value === "file" ? "Upload a file" : "Paste a link"}
              </label>
            ))}
          </div>
        </div>

        {mode === "file" ? (
          <label
            class={`dropzone${dragging ? " dragging" : ""}${file ? " has-file" : ""}`}
            onDragOver={(event) => {
              event.preventDefault();
              setDragging(true);
            }}
            onDragLeave={(event) => {
              // Moving onto a child element also fires dragleave on the zone itself.
              if (!event.currentTarget.contains(event.relatedTarget as Node | null)) setDragging(false);
            }}
            onDrop={onDrop}
          >
            <input
              class="visually-hidden"
              type="file"
              name="file"
              accept="video/*,.mkv,.mov,.mp4,.webm,.avi"
              disabled={busy}
              aria-describedby={errors.source ? "source-error" : undefined}
              onChange={(event) => pickFile(event.currentTarget.files?.[0])}
            />
            <span class="dropzone-icon" aria-hidden="true">⬆</span>
            {file ? (
              <span>
                <strong>{file.name}</strong>
                <span class="muted"> · {formatBytes(file.size)} · choose another or drop it here</span>
              </span>
            ) : (
              <span>
                <strong>Drop a video here</strong>
                <span class="muted"> or press to choose a file</span>
              </span>
            )}
          </label>
        ) : (
          <div class="field">
            <label for="source-url">Video link</label>
            <input
              id="source-url"
              type="url"
              name="url"
              inputMode="url"
              placeholder="https://www.youtube.com/watch?v=…"
              value={url}
              disabled={busy}
              aria-invalid={errors.source ? true : undefined}
              aria-describedby={errors.source ? "source-error" : undefined}
              onInput={(event) => setUrl(event.currentTarget.value)}
            />
          </div>
        )}
        <FieldError id="source-error" message={errors.source} />

        {upload && (
          <UploadStatus progress={upload} onCancel={() => uploadRef.current?.abort()} />
        )}
      </section>

      <section class="card" aria-labelledby="platforms-heading">
        <div class="card-head">
          <h2 id="platforms-heading">Platforms</h2>
          <span class="muted">{chosen.length} selected</span>
        </div>
        {platformsError && <p class="error-text">Platforms could not be loaded: {platformsError}</p>}
        {!platforms && !platformsError && <p class="muted">Loading platforms…</p>}
        <div class="platform-grid" role="group" aria-labelledby="platforms-heading"
          aria-describedby={errors.platforms ? "platforms-error" : undefined}>
          {platforms?.map((platform) => (
            <PlatformChoice
              key={platform.name}
              platform={platform}
              checked={chosen.includes(platform.name)}
              disabled={busy}
              onToggle={() => togglePlatform(platform.name)}
            />
          ))}
        </div>
        <FieldError id="platforms-error" message={errors.platforms} />
      </section>

      <section class="card" aria-labelledby="options-heading">
        <h2 id="options-heading">Options</h2>
        <div class="options-grid">
          <fieldset class="fill-modes">
            <legend>Fill mode</legend>
            <div class="fill-choices">
              {FILL_MODES.map((option) => (
                <label key={option.value} class={`fill-choice${fill === option.value ? " active" : ""}`}>
                  <input
                    type="radio"
                    name="fill"
                    value={option.value}
                    checked={fill === option.value}
                    disabled={busy}
                    onChange={() => setFill(option.value)}
                  />
                  <span class={`fill-art fill-${option.value}`} aria-hidden="true"><i /></span>
                  <span class="fill-label">{option.label}</span>
                  <span class="fill-hint">{option.hint}</span>
                </label>
              ))}
            </div>
          </fieldset>
          <div class="field">
            <label for="part-length">Part length (seconds)</label>
            <input
              id="part-length"
              type="number"
              name="part_length"
              min={1}
              step={1}
              inputMode="numeric"
              placeholder="60"
              value={partLength}
              disabled={busy}
              aria-invalid={errors.part_length ? true : undefined}
              aria-describedby="part-length-hint"
              onInput={(event) => setPartLength(event.currentTarget.value)}
            />
            <span id="part-length-hint" class="hint">
              Longer videos are split into numbered parts. Empty means 60 seconds, or less where
              a platform allows less.
            </span>
            <FieldError id="part-length-error" message={errors.part_length} />
          </div>
          <div class="field">
            <label for="title">Title</label>
            <input
              id="title"
              type="text"
              name="title"
              maxLength={200}
              placeholder={mode === "file" && file ? stripExtension(file.name) : "My video"}
              value={title}
              disabled={busy}
              onInput={(event) => setTitle(event.currentTarget.value)}
            />
            <FieldError id="title-error" message={errors.title} />
          </div>
        </div>
      </section>

      <FieldError id="form-error" message={errors.form} />
      <div class="actions">
        <button class="primary big" type="submit" disabled={busy}>
          {submitLabel(busy, upload != null)}
        </button>
      </div>
    </form>
  );
}

function submitLabel(busy: boolean, uploading: boolean): string {
  if (!busy) return "Create clips";
  return uploading ? "Uploading…" : "Creating…";
}

function FieldError({ id, message }: { id: string; message?: string }) {
  return (
    <p id={id} class="error-text" role={message ? "alert" : undefined} hidden={!message}>
      {message}
    </p>
  );
}

function PlatformChoice(props: {
  platform: Platform;
  checked: boolean;
  disabled: boolean;
  onToggle: () => void;
}) {
  const { platform } = props;
  const ratio = aspectRatio(platform.width, platform.height);
  // The preview box keeps the platform's shape inside a fixed 44 px square.
  const scale = 44 / Math.max(platform.width, platform.height);
  return (
    <label class={`platform-choice${props.checked ? " active" : ""}`}>
      <input
        type="checkbox"
        name="platforms"
        value={platform.name}
        checked={props.checked}
        disabled={props.disabled}
        onChange={props.onToggle}
      />
      <span class="ratio-box" aria-hidden="true">
        <span style={{ width: `${platform.width * scale}px`, height: `${platform.height * scale}px` }} />
      </span>
      <span class="platform-text">
        <span class="platform-label">{platform.label}</span>
        <span class="platform-meta">
          {ratio} · {platform.width}×{platform.height}
          {platform.max_clip_s ? ` · max ${formatDuration(platform.max_clip_s)}` : ""}
        </span>
      </span>
    </label>
  );
}

function UploadStatus({ progress, onCancel }: { progress: UploadProgress; onCancel: () => void }) {
  const fraction = progress.total > 0 ? progress.loaded / progress.total : null;
  const left =
    progress.bytesPerSecond && progress.bytesPerSecond > 0
      ? (progress.total - progress.loaded) / progress.bytesPerSecond
      : null;
  return (
    <div class="upload-status" aria-live="polite">
      <div class="progress-row">
        <progress
          aria-label="Upload progress"
          max={1}
          value={fraction ?? undefined}
        />
        <span class="percent">{formatPercent(fraction)}</span>
      </div>
      <div class="upload-meta">
        <span>
          {formatBytes(progress.loaded)} of {formatBytes(progress.total)} ·{" "}
          {formatRate(progress.bytesPerSecond)}
          {left != null ? ` · ${formatDuration(left)} left` : ""}
        </span>
        <button type="button" class="ghost danger" onClick={onCancel}>
          Cancel upload
        </button>
      </div>
    </div>
  );
}
