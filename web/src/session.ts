// The interface between the project page and a live connection: the store it fills, and commands.
import type { ProjectStore } from "./state";

export type Command =
  | { op: "cancel"; job_id: string }
  | { op: "cancel_project" }
  | { op: "set_priority"; job_id: string; priority: number }
  | { op: "retry"; job_id: string };

export interface Session {
  readonly store: ProjectStore;
  /** Sends a command; resolves on the server's ack, rejects with its error message. */
  send(command: Command): Promise<void>;
  /** Changes the display name others see; takes effect on the open connection. */
  rename(name: string): void;
  /** Skips the rest of the reconnect delay and tries at once. */
  retryNow(): void;
  close(): void;
}

export const INVALID_LINK =
  "This link is not valid: the project does not exist or its token is wrong. Check that you copied the whole link.";
