#!/usr/bin/env node
// Lobu runs on Node 24. When started by an older Node (e.g. a system Node 20),
// re-run this command on the Node 24 that the repository installs from npm.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const major = Number(process.versions.node.split(".")[0]);
if (major >= 24) {
  await import("../src/main.ts");
} else {
  let node;
  try {
    const pkg = createRequire(import.meta.url).resolve("node/package.json");
    node = join(dirname(pkg), "bin", "node");
  } catch {}
  if (!node || !existsSync(node)) {
    console.error(
      `lobu needs Node.js 24 or newer (this is ${process.version}). Run \`npm ci\` in the repository (it installs Node 24 from npm) or install Node 24.`,
    );
    process.exit(1);
  }
  const child = spawn(node, [process.argv[1], ...process.argv.slice(2)], { stdio: "inherit" });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
  // Under npm (npx, npm start), a SIGTERM to npm reaches only npm's `sh -c`: when
  // that parent goes away, stop the command as if it had been signalled.
  if (process.env.npm_execpath) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) child.kill("SIGTERM");
    }, 500).unref();
  }
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
}
