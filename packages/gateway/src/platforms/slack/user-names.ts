import { SlackDirectory } from "./directory.ts";
import type { Workspace } from "./workspaces.ts";

/**
 * People's display names (users.info), from the Slack directory's cache (the
 * one the access check uses: one lookup serves both); undefined when Slack is
 * slow or says no.
 */
export class UserNames {
  readonly #directory: SlackDirectory;

  constructor(directory: SlackDirectory = new SlackDirectory()) {
    this.#directory = directory;
  }

  async of(ws: Workspace, userId: string): Promise<string | undefined> {
    return (await this.#directory.person(ws, userId))?.name;
  }
}
