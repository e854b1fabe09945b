import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { settled } from "@lobu/core/best-effort";
import type { Skill } from "./catalog.ts";
import { copySkillTree } from "./files.ts";

/** Under the data dir: one folder per sandbox with the files of the skills it has. */
export const SKILL_VIEWS_DIR = "skill-views";

export function skillViewsRoot(dataDir: string): string {
  return join(dataDir, SKILL_VIEWS_DIR);
}

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * The skill files a sandbox sees. Each sandbox has a folder
 * `<data dir>/skill-views/<sandbox id>/` that its driver shows read-only
 * (at /skills) and that holds a copy of each installed skill's folder:
 * copies, not the project's folders themselves, so a sandbox sees exactly the
 * skills of the turn running in it and nothing else of the project. The
 * folder's contents are brought up to date before every turn and when a
 * skill is granted mid-turn; a mounted folder shows the change at once.
 */
export class SkillViews {
  readonly root: string;
  /** Told when a skill's files cannot be copied (its folder was removed since startup, say). */
  private readonly onCopyFailed: (skill: string, err: unknown) => void;
  /** What each sandbox's folder holds now (name → digest), as far as this process knows. */
  private readonly held = new Map<string, Map<string, string>>();
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(root: string, opts: { onCopyFailed?: (skill: string, err: unknown) => void } = {}) {
    this.root = root;
    this.onCopyFailed = opts.onCopyFailed ?? (() => {});
  }

  /** The sandbox's folder, created (empty) if needed: a mount source must exist. */
  ensure(sandboxId: string): string {
    if (!SANDBOX_ID.test(sandboxId)) throw new Error(`invalid sandbox id ${sandboxId}`);
    const dir = join(this.root, sandboxId);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    return dir;
  }

  /** Delete the sandbox's folder (the sandbox is erased). */
  remove(sandboxId: string): void {
    if (!SANDBOX_ID.test(sandboxId)) throw new Error(`invalid sandbox id ${sandboxId}`);
    this.held.delete(sandboxId);
    rmSync(join(this.root, sandboxId), { recursive: true, force: true });
  }

  /** Make the sandbox's folder hold exactly the files of `skills` (those that ship files). */
  sync(sandboxId: string, skills: readonly Skill[]): Promise<void> {
    const previous = this.chains.get(sandboxId) ?? Promise.resolve();
    // The previous sync's failure went to its own caller.
    const next = settled(previous).then(() => this.apply(sandboxId, skills));
    this.chains.set(sandboxId, next);
    // (Both ways: a failed sync is the caller's to handle, not an unhandled rejection here.)
    const forget = () => {
      if (this.chains.get(sandboxId) === next) this.chains.delete(sandboxId);
    };
    next.then(forget, forget);
    return next;
  }

  private apply(sandboxId: string, skills: readonly Skill[]): void {
    const wanted = new Map(skills.flatMap((s) => (s.dir && s.digest ? [[s.name, s]] : [])));
    const known = this.held.get(sandboxId);
    // Already exactly these, made so by this process (only it writes the folder, and
    // `remove` forgets it): no file system calls on the turn's path.
    if (
      known?.size === wanted.size &&
      [...wanted].every(([name, skill]) => known.get(name) === skill.digest)
    )
      return;
    const dir = this.ensure(sandboxId);
    // A new process knows nothing of what an earlier one left: everything is copied once.
    const held = known ?? new Map<string, string>();
    this.held.set(sandboxId, held);
    for (const name of readdirSync(dir)) {
      if (!wanted.has(name)) {
        this.discard(join(dir, name));
        held.delete(name);
      }
    }
    for (const [name, skill] of wanted) {
      if (held.get(name) === skill.digest && existsSync(join(dir, name))) continue;
      // Copied beside the folder (same filesystem), then renamed in: never half a skill.
      const staging = join(this.root, ".staging", randomUUID());
      try {
        copySkillTree(skill.dir!, staging);
      } catch (err) {
        // The turn goes on with the skill's instructions and without its files.
        rmSync(staging, { recursive: true, force: true });
        this.onCopyFailed(name, err);
        continue;
      }
      if (existsSync(join(dir, name))) this.discard(join(dir, name));
      renameSync(staging, join(dir, name));
      held.set(name, skill.digest!);
    }
  }

  private discard(path: string): void {
    const trash = join(this.root, ".staging", `old-${randomUUID()}`);
    mkdirSync(join(this.root, ".staging"), { recursive: true });
    renameSync(path, trash);
    rmSync(trash, { recursive: true, force: true });
  }
}
