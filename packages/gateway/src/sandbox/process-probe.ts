import { readFile } from "node:fs/promises";
import { errorMessage } from "@lobu/core";
import { isRoot } from "./commands.ts";
import type { DriverProbe } from "./driver.ts";
import type { ProcessDriver } from "./process-driver.ts";
import { deniedSyscalls } from "./seccomp.ts";

/**
 * probe() of the process driver: host prerequisites, the driver's own detection,
 * then a real trial sandbox. Never throws; `ok: false` comes with what to fix.
 */
export async function probeProcessDriver(driver: ProcessDriver): Promise<DriverProbe> {
  const details: string[] = [];
  const result = (ok: boolean): DriverProbe => ({ driver: "process", isolated: true, ok, details });
  try {
    if (process.platform !== "linux") {
      details.push(
        `the process driver needs Linux (namespaces, cgroups, bubblewrap); this is ${process.platform}: use sandbox.driver = "virtual"`,
      );
      return result(false);
    }
    const userns = await readFile("/proc/sys/user/max_user_namespaces", "utf8").catch(() => "");
    if (userns.trim() === "0")
      details.push("user namespaces are disabled: sysctl -w user.max_user_namespaces=15000");
    const clone = await readFile("/proc/sys/kernel/unprivileged_userns_clone", "utf8").catch(
      () => "",
    );
    if (clone.trim() === "0" && !isRoot())
      details.push(
        "unprivileged user namespaces are off: sysctl -w kernel.unprivileged_userns_clone=1",
      );
    const apparmor = await readFile(
      "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
      "utf8",
    ).catch(() => "");
    if (apparmor.trim() === "1")
      details.push(
        "AppArmor restricts user namespaces (Ubuntu 24.04+): add an AppArmor profile allowing userns for bwrap, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
      );
    const { setup, error } = await driver.detectForProbe();
    if (!setup) {
      details.push(error ?? "process driver unavailable");
      return result(false);
    }
    details.push(
      `bubblewrap: ${setup.bwrap}${setup.disableUserns ? "" : " (too old for --disable-userns: upgrade to ≥ 0.8 so agents cannot create nested user namespaces)"}`,
    );
    details.push(
      setup.root
        ? "running as root: each sandbox gets its own host uid"
        : "not root: sandboxes share the gateway's uid outside their user namespace (distinct uids only inside); run as root for per-sandbox host uids, cgroup limits and loop disk quotas",
    );
    details.push(...setup.cgroupDetails, setup.quotaDetail);
    details.push(
      setup.seccomp
        ? `seccomp: denies ${deniedSyscalls().join(", ")}`
        : `seccomp: off (${driver.options.seccomp === false ? "disabled by configuration" : `no filter for ${process.arch}`})`,
    );
    if (!setup.prlimit)
      details.push("prlimit (util-linux) missing: no rlimits (open files, file size, processes)");
    if (!setup.nsenter)
      details.push(
        "nsenter (util-linux) missing: operators cannot run commands in sandboxes (POST /api/v1/sandboxes/<id>/exec)",
      );
    if (!setup.shell.endsWith("bash"))
      details.push(
        "bash missing: inherited file descriptors are not closed before bwrap (install bash)",
      );

    // A real trial: a complete sandbox (uid, namespaces, limits, quota, runtime,
    // egress socket) whose worker checks its network and says ready.
    const failure = await driver.trial();
    if (failure) {
      details.push(`trial sandbox failed: ${failure.slice(0, 800)}`);
      return result(false);
    }
    details.push(
      "trial sandbox: ok (namespaces, own uid, limits, read-only runtime, loopback-only network, egress socket)",
    );
    return result(true);
  } catch (err) {
    details.push(`probe failed: ${errorMessage(err)}`);
    return result(false);
  }
}
