import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

/**
 * A sandbox image for the `docker` driver's tests, made where no registry can
 * be reached: a root filesystem assembled from this Debian host's own
 * packages (the shell and tools agents and the attack suite use, plus the
 * shared libraries Node needs) and `docker import`ed. Its tag is a hash of
 * what went in, so a second run finds it and builds nothing.
 */

/** Debian packages whose files go into the image (the libraries their programs need come along). */
const PACKAGES = [
  "libc6",
  "libstdc++6",
  "libgcc-s1",
  "dash",
  "bash",
  "coreutils",
  "grep",
  "sed",
  "findutils",
  "util-linux",
  "perl-base",
];

/** Bump to rebuild images made by an older builder. */
const BUILDER_VERSION = "1";

const SKIP = /^\/usr\/share\/(doc|man|info|locale|lintian|bash-completion)\//;

function dpkgFiles(pkg: string): string[] {
  const arch = execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
  for (const name of [pkg, `${pkg}:${arch}`]) {
    const res = spawnSync("dpkg", ["-L", name], { encoding: "utf8" });
    if (res.status === 0) return res.stdout.split("\n").filter((p) => p && !SKIP.test(p));
  }
  throw new Error(`the Debian package ${pkg} is not installed (apt-get install ${pkg})`);
}

function versions(): string {
  // dpkg-query's own ${field} syntax, not a template.
  const format = ["$", "{Package} $", "{Version}\\n"].join("");
  return execFileSync("dpkg-query", ["-W", "-f", format, ...PACKAGES], {
    encoding: "utf8",
  });
}

/** The image's tag for this host's packages: `lobu-sandbox-host:<hash>`. */
export function hostSandboxImageTag(): string {
  const hash = createHash("sha256")
    .update(`${BUILDER_VERSION}\n${process.arch}\n${versions()}`)
    .digest("hex")
    .slice(0, 16);
  return `lobu-sandbox-host:${hash}`;
}

/** Whether the Docker CLI reaches an Engine. */
export function dockerAvailable(): { ok: boolean; why?: string } {
  const res = spawnSync("docker", ["version", "--format", "{{.Server.Version}}"], {
    encoding: "utf8",
    timeout: 20_000,
  });
  if (res.error) return { ok: false, why: `no docker CLI (${res.error.message})` };
  if (res.status !== 0) return { ok: false, why: `dockerd does not answer: ${res.stderr.trim()}` };
  return { ok: true };
}

/** Whether anything (a dangling link too) is at `path`. */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Build the image unless an image with its tag exists; returns the tag. */
export function ensureHostSandboxImage(): string {
  const tag = hostSandboxImageTag();
  if (spawnSync("docker", ["image", "inspect", tag], { stdio: "ignore" }).status === 0) return tag;
  const root = mkdtempSync("/tmp/lobu-rootfs-");
  try {
    // Debian's merged /usr: the top-level links the host has.
    for (const link of ["bin", "lib", "lib64", "sbin"]) {
      const host = `/${link}`;
      if (existsSync(host) && lstatSync(host).isSymbolicLink())
        symlinkSync(readlinkSync(host), join(root, link));
    }
    // Package lists and ldd name /bin/sh or /lib64/ld-linux...; under merged /usr the file is below /usr.
    const merged = (p: string) =>
      /^\/(bin|lib|lib64|sbin)\//.test(p) && lstatSync(`/${p.split("/")[1]}`).isSymbolicLink()
        ? `/usr${p}`
        : p;
    const copied = new Set<string>();
    const copy = (original: string) => {
      const path = merged(original);
      if (copied.has(path)) return;
      copied.add(path);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(path);
      } catch {
        return;
      }
      const to = join(root, path);
      if (st.isDirectory()) {
        if (!present(to)) mkdirSync(to, { recursive: true });
        return;
      }
      mkdirSync(dirname(to), { recursive: true });
      if (present(to) || lstatSync(dirname(to)).isSymbolicLink()) return;
      if (st.isSymbolicLink()) symlinkSync(readlinkSync(path), to);
      else if (st.isFile()) copyFileSync(path, to);
    };
    const files = PACKAGES.flatMap(dpkgFiles).map(merged);
    for (const file of files) copy(file);
    // Libraries of the programs copied, and of Node (mounted from the host at run time).
    const elves = files.filter((f) => /\/s?bin\//.test(f));
    elves.push(process.execPath);
    for (const elf of elves) {
      const res = spawnSync("ldd", [elf], { encoding: "utf8" });
      if (res.status !== 0) continue;
      for (const m of res.stdout.matchAll(/(\/\S+\.so[^\s]*)/g)) {
        const lib = m[1] as string;
        copy(lib);
        // The link a program names (libc.so.6) and the file it points to.
        const target = spawnSync("readlink", ["-f", lib], { encoding: "utf8" }).stdout.trim();
        if (target) copy(target);
      }
    }
    for (const dir of ["etc", "tmp", "workspace", "run/lobu", "proc", "dev", "sys", "skills"])
      mkdirSync(join(root, dir), { recursive: true, mode: 0o755 });
    writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    writeFileSync(join(root, "etc/group"), "root:x:0:\n");
    const tar = spawnSync("tar", ["-C", root, "-c", "."], { maxBuffer: 1 << 30 });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr.toString()}`);
    const imported = spawnSync("docker", ["import", "-", tag], {
      input: tar.stdout,
      encoding: "utf8",
      maxBuffer: 1 << 20,
    });
    if (imported.status !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
    return tag;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
