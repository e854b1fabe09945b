export * from "./cgroups.ts";
export * from "./driver.ts";
export { createHostDriver } from "./host-driver.ts";
export { readVolumeMeta } from "./identity.ts";
export * from "./launcher.ts";
export { createProcessDriver, ProcessDriver } from "./process-driver.ts";
export {
  createVirtualDriver,
  type PoolIsolation,
  placeSandbox,
  VirtualDriver,
} from "./virtual-driver.ts";
