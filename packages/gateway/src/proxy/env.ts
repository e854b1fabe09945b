// The worker builds this environment too, so it lives in @lobu/core.
export { workerProxyEnv } from "@lobu/core";
