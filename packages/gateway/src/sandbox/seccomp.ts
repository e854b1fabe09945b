import { arch } from "node:process";

/**
 * A seccomp filter for sandboxes: a short denylist of kernel interfaces an agent
 * has no use for and that have a long record of privilege-escalation bugs
 * (io_uring, bpf, userfaultfd, perf events, keyrings, kexec). Namespaces and
 * mounts are already out of reach (no capabilities, no nested user namespaces).
 * Denied calls fail with ENOSYS so programs (libuv's io_uring probe) fall back.
 *
 * Emitted as classic BPF (struct sock_filter[]) for `bwrap --seccomp FD`.
 */

const AUDIT_ARCH: Record<string, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };

/** Syscall numbers per architecture. */
const DENY: Record<string, Record<string, number>> = {
  x64: {
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    bpf: 321,
    userfaultfd: 323,
    perf_event_open: 298,
    keyctl: 250,
    add_key: 248,
    request_key: 249,
    kexec_load: 246,
    kexec_file_load: 320,
    init_module: 175,
    finit_module: 313,
    delete_module: 176,
    acct: 163,
    swapon: 167,
    swapoff: 168,
    reboot: 169,
    open_by_handle_at: 304,
    name_to_handle_at: 303,
    lookup_dcookie: 212,
    uselib: 134,
    ioperm: 173,
    iopl: 172,
    quotactl: 179,
    fsopen: 430,
    fsmount: 432,
    move_mount: 429,
    open_tree: 428,
  },
  arm64: {
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    bpf: 280,
    userfaultfd: 282,
    perf_event_open: 241,
    keyctl: 219,
    add_key: 217,
    request_key: 218,
    kexec_load: 104,
    kexec_file_load: 294,
    init_module: 105,
    finit_module: 273,
    delete_module: 106,
    acct: 89,
    swapon: 224,
    swapoff: 225,
    reboot: 142,
    open_by_handle_at: 265,
    name_to_handle_at: 264,
    lookup_dcookie: 18,
    quotactl: 60,
    fsopen: 430,
    fsmount: 432,
    move_mount: 429,
    open_tree: 428,
  },
};

// Classic BPF opcodes and seccomp return values.
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const RET_K = 0x06;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;

/** The syscalls denied on this architecture (empty when unsupported). */
export function deniedSyscalls(forArch: string = arch): string[] {
  return Object.keys(DENY[forArch] ?? {});
}

/** The compiled filter for this architecture, or undefined when it is not supported. */
export function seccompProgram(forArch: string = arch): Buffer | undefined {
  const auditArch = AUDIT_ARCH[forArch];
  const deny = DENY[forArch];
  if (auditArch === undefined || !deny) return undefined;
  const numbers = Object.values(deny);
  const insns: Array<[number, number, number, number]> = [];
  const n = numbers.length;
  // Layout: [0] load arch, [1] arch check, [2] load nr, [3] x32 check (x64 only),
  // then one jeq per denied number, then ALLOW, then DENY.
  const x32 = forArch === "x64" ? 1 : 0;
  const denyAt = 3 + x32 + n + 1; // index of the DENY return
  insns.push([LD_W_ABS, 0, 0, 4]); // seccomp_data.arch
  // Another architecture (e.g. 32-bit compat calls): deny.
  insns.push([JEQ_K, 0, denyAt - 2, auditArch]);
  insns.push([LD_W_ABS, 0, 0, 0]); // seccomp_data.nr
  if (x32) insns.push([JGE_K, denyAt - 4, 0, X32_SYSCALL_BIT]);
  numbers.forEach((nr, i) => {
    const here = 3 + x32 + i;
    insns.push([JEQ_K, denyAt - here - 1, 0, nr]);
  });
  insns.push([RET_K, 0, 0, RET_ALLOW]);
  insns.push([RET_K, 0, 0, RET_ERRNO | ENOSYS]);
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, jt, jf, k], i) => {
    buf.writeUInt16LE(code, i * 8);
    buf.writeUInt8(jt, i * 8 + 2);
    buf.writeUInt8(jf, i * 8 + 3);
    buf.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return buf;
}
