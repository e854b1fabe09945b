import { mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import { join } from "node:path";

/** The link inside each sandbox's directory: its bin/ goes first on the sandbox's PATH. */
export const PROFILE_LINK = "profile";

/**
 * One directory per sandbox, `<data dir>/nix/sandboxes/<id>`, shown read-only
 * inside the sandbox (the process driver binds it at SANDBOX_PACKAGES). It holds
 * one symlink, `profile`, to the user environment in the store of the person
 * whose turn runs there. The directory is bound, not the link, so replacing
 * the link (atomically, by rename) is seen inside at once: a package that
 * becomes ready mid-turn is on PATH for the next command, with no restart.
 */
export class SandboxLinks {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, "sandboxes");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** The sandbox's directory (made when missing): what the driver binds. */
  dirFor(sandboxId: string): string {
    const dir = join(this.dir, sandboxId);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  /** What the sandbox's link points at now. */
  target(sandboxId: string): string | undefined {
    try {
      return readlinkSync(join(this.dir, sandboxId, PROFILE_LINK));
    } catch {
      return undefined;
    }
  }

  /** Point the sandbox's link at `storePath` (or remove it: no packages). */
  point(sandboxId: string, storePath: string | undefined): void {
    const dir = this.dirFor(sandboxId);
    const link = join(dir, PROFILE_LINK);
    if (this.target(sandboxId) === storePath) return;
    if (!storePath) {
      rmSync(link, { force: true });
      return;
    }
    const tmp = join(dir, `.${PROFILE_LINK}.${process.pid}.${Date.now()}`);
    symlinkSync(storePath, tmp);
    try {
      renameSync(tmp, link);
    } catch (err) {
      unlinkSync(tmp);
      throw err;
    }
  }

  remove(sandboxId: string): void {
    rmSync(join(this.dir, sandboxId), { recursive: true, force: true });
  }
}
