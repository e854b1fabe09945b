export { SessionHost } from "./host.ts";
export { registerModel } from "./model.ts";
export { SandboxSession } from "./sandbox-session.ts";
export { realWorkspace, type Workspace } from "./workspace.ts";
