import { existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { dirname, join, sep } from "node:path";

/**
 * The filesystem and namespace layout of a `process` sandbox, as bwrap arguments.
 *
 * Visible inside: the host's /usr and the /bin, /lib… links or dirs next to it,
 * /nix when present, the worker runtime (repository paths and node, read-only at
 * their host paths), a minimal /etc, fresh /proc, minimal /dev, a size-limited
 * /tmp, the volume at /workspace, the egress socket at /run/lobu/egress.sock and
 * the skills' files read-only at /skills.
 * Nothing else of the host exists in the sandbox's mount namespace.
 */

export const SANDBOX_WORKSPACE = "/workspace";
/** Where a pool process (virtual driver) sees the parent of all its sandboxes' volumes. */
export const POOL_VOLUMES = "/volumes";
export const SANDBOX_EGRESS_SOCKET = "/run/lobu/egress.sock";
/** Where the CA bundle (system CAs + installation CA) appears inside a sandbox. */
export const SANDBOX_CA_BUNDLE = "/run/lobu/ca-bundle.pem";
export const SANDBOX_HOSTNAME = "sandbox";
/** Where a sandbox sees the files of its skills (read-only), one folder per skill. */
export const SANDBOX_SKILLS = "/skills";
/** Where a pool process (virtual driver) sees every sandbox's skills folder (read-only). */
export const POOL_SKILLS = "/skill-views";

const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/** /etc entries copied through from the host: certificates, loader and locale data, no secrets. */
export const ETC_PASSTHROUGH = [
  "alternatives",
  "ssl/certs",
  "ssl/openssl.cnf",
  "ca-certificates",
  "ca-certificates.conf",
  "pki/tls/certs",
  "pki/ca-trust",
  "crypto-policies",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "localtime",
  "timezone",
  "host.conf",
  "gai.conf",
  "protocols",
  "services",
  "mime.types",
  "os-release",
  "debian_version",
  "lsb-release",
  "inputrc",
  "bash.bashrc",
  "profile",
  "magic",
  "magic.mime",
  "locale.alias",
  "perl",
];

/** /etc/passwd, group, hosts... for one sandbox uid. */
export function etcFiles(uid: number, gid: number, shell: string): Record<string, string> {
  return {
    passwd: [
      "root:x:0:0:root:/root:/usr/sbin/nologin",
      `agent:x:${uid}:${gid}:Lobu agent:${SANDBOX_WORKSPACE}:${shell}`,
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
      "",
    ].join("\n"),
    group: ["root:x:0:", `agent:x:${gid}:`, "nogroup:x:65534:", ""].join("\n"),
    hosts: `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${SANDBOX_HOSTNAME}\n`,
    hostname: `${SANDBOX_HOSTNAME}\n`,
    "resolv.conf": "# No DNS in the sandbox: reach the network through HTTP_PROXY / HTTPS_PROXY.\n",
    "nsswitch.conf":
      "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n",
  };
}

/** How the host's root-level system directories look (real dirs or usrmerge symlinks). */
export function systemMounts(): string[] {
  const args: string[] = [];
  // The Nix store only (host programs may live there): /nix/var holds the host's
  // profiles and GC roots, which name the data dir's package profiles.
  for (const dir of [...SYSTEM_DIRS, "/nix/store"]) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(dir), dir);
    else if (st.isDirectory()) args.push("--ro-bind", dir, dir);
  }
  return args;
}

export const isUnder = (path: string, root: string): boolean =>
  path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

/** Drop paths covered by another in the list; realpaths, existing only. */
export function normalizeBinds(paths: string[]): string[] {
  const real = [
    ...new Set(
      paths.flatMap((p) => {
        try {
          return [realpathSync(p)];
        } catch {
          return [];
        }
      }),
    ),
  ].sort((a, b) => a.length - b.length);
  const out: string[] = [];
  for (const p of real) if (!out.some((root) => isUnder(p, root))) out.push(p);
  return out;
}

/** The paths among `candidates` that would be visible through `binds` (to mask with a tmpfs). */
export function pathsToHide(candidates: string[], binds: string[]): string[] {
  const out = new Set<string>();
  for (const c of candidates) {
    let real: string;
    try {
      real = realpathSync(c);
    } catch {
      continue;
    }
    if (binds.some((b) => isUnder(real, b) && real !== b)) out.add(real);
  }
  return [...out].sort((a, b) => a.length - b.length);
}

export interface Bind {
  /** Host path as bwrap (running as the sandbox uid) will resolve it. */
  source: string;
  /** Path inside the sandbox. */
  dest: string;
}

export interface BwrapLayout {
  /** Inside uid/gid, only set when bwrap runs as the gateway's own (non-root) uid. */
  uid?: number;
  gid?: number;
  disableUserns: boolean;
  /** Read-only runtime binds (repository paths, node). */
  roBinds: Bind[];
  /** Paths inside the sandbox to cover with an empty tmpfs (data dirs under the runtime). */
  hide: string[];
  /** Host source of /workspace (rw) and of the egress socket. */
  volumeSource: string;
  /** Where the volume appears inside (default /workspace; pool processes use /volumes). */
  volumeDest?: string;
  egressSource: string;
  /** Host source of the CA bundle, shown at SANDBOX_CA_BUNDLE (a fixed path, so no tmpfs can cover it). */
  caBundleSource?: string;
  /** The skills folder, shown read-only (SANDBOX_SKILLS, or POOL_SKILLS for pools). */
  skills?: Bind;
  etc: Record<string, string>;
  /** Compiled seccomp filter (see seccomp.ts). */
  seccomp?: Buffer;
  tmpBytes?: number;
  env: Record<string, string>;
  /** Descriptor numbers in the child. */
  fds: { info: number; firstData: number };
}

/** bwrap arguments (everything between `bwrap` and `--`) plus the data to feed to the data fds. */
export function bwrapArgs(layout: BwrapLayout): { args: string[]; data: Array<string | Buffer> } {
  const a: string[] = [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-net",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--hostname",
    SANDBOX_HOSTNAME,
  ];
  if (layout.disableUserns) a.push("--disable-userns");
  if (layout.uid !== undefined) a.push("--uid", String(layout.uid));
  if (layout.gid !== undefined) a.push("--gid", String(layout.gid));

  a.push(...systemMounts());
  // /tmp first: a runtime that lives under /tmp (a checkout in /tmp) is bound on top of it.
  if (layout.tmpBytes) a.push("--size", String(layout.tmpBytes));
  a.push("--tmpfs", "/tmp", "--dir", "/var", "--symlink", "../tmp", "/var/tmp");
  // Binds inside a hidden path (the CA bundle in a hidden data dir) go on top of its tmpfs.
  const hidden = (dest: string) => layout.hide.some((h) => isUnder(dest, h) && dest !== h);
  for (const bind of layout.roBinds)
    if (!hidden(bind.dest)) a.push("--ro-bind", bind.source, bind.dest);
  for (const path of layout.hide) a.push("--tmpfs", path);
  for (const bind of layout.roBinds)
    if (hidden(bind.dest)) a.push("--ro-bind", bind.source, bind.dest);

  a.push("--dir", "/etc");
  for (const entry of ETC_PASSTHROUGH) {
    const host = join("/etc", entry);
    if (existsSync(host)) a.push("--ro-bind", host, host);
  }
  const data: Array<string | Buffer> = [];
  let fd = layout.fds.firstData;
  if (layout.seccomp) {
    a.push("--seccomp", String(fd++));
    data.push(layout.seccomp);
  }
  for (const [name, content] of Object.entries(layout.etc)) {
    a.push("--perms", "0644", "--ro-bind-data", String(fd++), join("/etc", name));
    data.push(content);
  }

  a.push("--proc", "/proc", "--dev", "/dev");
  const volumeDest = layout.volumeDest ?? SANDBOX_WORKSPACE;
  a.push("--bind", layout.volumeSource, volumeDest);
  a.push("--dir", dirname(SANDBOX_EGRESS_SOCKET));
  a.push("--ro-bind", layout.egressSource, SANDBOX_EGRESS_SOCKET);
  if (layout.caBundleSource) a.push("--ro-bind", layout.caBundleSource, SANDBOX_CA_BUNDLE);
  if (layout.skills) a.push("--ro-bind", layout.skills.source, layout.skills.dest);
  a.push("--chdir", volumeDest, "--info-fd", String(layout.fds.info), "--clearenv");
  for (const [key, value] of Object.entries(layout.env)) a.push("--setenv", key, value);
  return { args: a, data };
}

/**
 * A tiny shell prologue run before bwrap: join the sandbox's cgroups (so nothing
 * ever runs outside its limits), close every inherited descriptor above `keep`
 * (bash only; a leaked host fd would be a way out), then exec the rest.
 * Arguments: keep, count of procs files, the files, then the command.
 */
export const WRAPPER_SCRIPT = [
  "keep=$1; n=$2; shift 2",
  'while [ "$n" -gt 0 ]; do echo $$ > "$1" || { echo "lobu: cannot join cgroup $1" >&2; exit 121; }; shift; n=$((n-1)); done',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not JS
  'if [ -n "$BASH_VERSION" ]; then for p in /proc/$$/fd/*; do f=${p##*/}; if [ "$f" -gt "$keep" ] 2>/dev/null; then eval "exec $f>&-"; fi; done; fi',
  'exec "$@"',
].join("\n");

export function wrapperArgv(keepFd: number, procsFiles: string[], command: string[]): string[] {
  return [
    "-c",
    WRAPPER_SCRIPT,
    "lobu-sandbox",
    String(keepFd),
    String(procsFiles.length),
    ...procsFiles,
    ...command,
  ];
}

/**
 * Root gateways run bwrap as the sandbox's own uid, which may not be allowed to
 * walk to the volume, the egress socket or the runtime (a data dir under /root,
 * a 0700 parent...). So first, as root in a private mount namespace of its own,
 * the sandbox's sources are bind-mounted onto a small tmpfs at `stageDir` (a
 * world-traversable, otherwise empty host directory); bwrap then reads them from
 * there. These mounts exist only in that namespace and vanish with the sandbox.
 * Arguments: stage dir, dir whose mounts to drop (or ""), pair count, (source,
 * name) pairs, then the command.
 */
export const STAGE_SCRIPT = [
  "stage=$1; detach=$2; n=$3; shift 3",
  'mount -t tmpfs -o mode=0711,size=1m,nosuid,nodev lobu-stage "$stage" || exit 122',
  'while [ "$n" -gt 0 ]; do',
  '  src=$1; dst="$stage/$2"; shift 2; n=$((n-1))',
  '  if [ -d "$src" ]; then mkdir "$dst"; else : > "$dst"; fi',
  '  mount --bind "$src" "$dst" || { echo "lobu: cannot stage $src" >&2; exit 122; }',
  "done",
  // This namespace began as a copy of the host's, other sandboxes' mounted
  // volumes included: let go of those, or they stay busy (and their disk images
  // attached) for as long as this sandbox runs. That means this gateway's
  // volumes (under $detach) and any other gateway's on the host (a loop-image
  // volume is the mount point M with its image M.img next to it). The mount
  // table is read whole first: unmounting while reading it skips entries.
  'all=; while read -r _ _ _ _ mnt _; do all="$all $mnt"; done < /proc/self/mountinfo',
  "set -f",
  "for mnt in $all; do",
  '  if [ -n "$detach" ]; then case "$mnt" in "$detach"/*) umount -l "$mnt" 2>/dev/null; continue;; esac; fi',
  '  if [ -f "$mnt.img" ]; then umount -l "$mnt" 2>/dev/null; fi',
  "done",
  "set +f",
  'exec "$@"',
].join("\n");

export function stageArgv(
  unshare: string,
  shell: string,
  stageDir: string,
  sources: Array<{ source: string; name: string }>,
  command: string[],
  /** Host directory whose mounts (other volumes) this namespace should not keep. */
  detach = "",
): string[] {
  return [
    unshare,
    "--mount",
    "--propagation",
    "private",
    "--",
    shell,
    "-c",
    STAGE_SCRIPT,
    "lobu-stage",
    stageDir,
    detach,
    String(sources.length),
    ...sources.flatMap((s) => [s.source, s.name]),
    ...command,
  ];
}
