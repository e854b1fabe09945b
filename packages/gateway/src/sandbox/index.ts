export { SANDBOX_EGRESS_SOCKET, SANDBOX_WORKSPACE } from "./bwrap.ts";
export * from "./cgroups.ts";
export { ChannelConnection } from "./connection.ts";
export * from "./driver.ts";
export { createHostDriver, HostDriver, type HostDriverOptions } from "./host-driver.ts";
export { readVolumeMeta, type VolumeMeta, volumeImagePath, volumeMetaPath } from "./identity.ts";
export * from "./launcher.ts";
export { OutputCapture } from "./output.ts";
export { createProcessDriver, ProcessDriver, type ProcessDriverOptions } from "./process-driver.ts";
export {
  createVirtualDriver,
  type PoolIsolation,
  placeSandbox,
  VirtualDriver,
  type VirtualDriverOptions,
} from "./virtual-driver.ts";
export type { QuotaMode } from "./volume.ts";
