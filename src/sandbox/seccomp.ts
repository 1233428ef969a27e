/**
 * A seccomp filter for bwrap (`--seccomp FD`) that refuses the two ioctls a sandboxed program could
 * use to type into the host's terminal: TIOCSTI (push a byte into the input queue) and TIOCLINUX
 * (its selection paste). The program shares the terminal when stdin is one — it needs it, and job
 * control — and kernels before 6.2, or with `dev.tty.legacy_tiocsti=1`, still allow TIOCSTI, so
 * without this a program could queue `rm -rf ~\n` for the user's shell to run after it exits.
 *
 * Classic BPF over `struct seccomp_data` {int nr; u32 arch; u64 ip; u64 args[6]}. Only the low 32
 * bits of the request are compared: the kernel's ioctl takes an unsigned int, so high bits set by a
 * caller are ignored by the kernel and must not slip past the filter. Compat syscall ABIs (i386 on
 * x86_64, arm on arm64, x32) get the same rule with their own ioctl numbers.
 */

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
/** args[1] (the request), low 32 bits on these little-endian machines. */
const OFFSET_ARG1_LOW = 16 + 8;

interface Abi {
  arch: number;
  ioctl: number;
}

/** The syscall ABIs a process on this machine can use, with ioctl's number in each. */
const ABIS: Partial<Record<string, Abi[]>> = {
  x64: [
    { arch: 0xc000003e, ioctl: 16 }, // AUDIT_ARCH_X86_64
    { arch: 0xc000003e, ioctl: 0x40000000 + 514 }, // x32 (same arch, __X32_SYSCALL_BIT)
    { arch: 0x40000003, ioctl: 54 }, // AUDIT_ARCH_I386
  ],
  arm64: [
    { arch: 0xc00000b7, ioctl: 29 }, // AUDIT_ARCH_AARCH64
    { arch: 0x40000028, ioctl: 54 }, // AUDIT_ARCH_ARM
  ],
};

type Instruction = [code: number, jt: number, jf: number, k: number];

/**
 * The filter program for this machine's architecture, as the bytes bwrap reads from its --seccomp
 * descriptor; null where the architecture is not known here (the launcher then takes the terminal
 * away from the program instead).
 */
export function ttyInjectionFilter(arch: string = process.arch): Buffer | null {
  const abis = ABIS[arch];
  if (!abis) return null;
  const deny: Instruction = [BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM];
  const allow: Instruction = [BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW];
  // Per ABI: [ld arch, jeq arch?, ld nr, jeq ioctl?, ld arg1, jeq TIOCSTI → deny, jeq TIOCLINUX → deny, ret allow]
  // laid out so every "no" jumps to the next ABI's block, and past the last one to allow.
  const program: Instruction[] = [];
  const BLOCK = 8;
  for (const abi of abis) {
    const toNext = (from: number): number => BLOCK - 1 - from; // jump offset to the next block's start
    program.push(
      [BPF_LD_W_ABS, 0, 0, OFFSET_ARCH],
      [BPF_JEQ_K, 0, toNext(1), abi.arch],
      [BPF_LD_W_ABS, 0, 0, OFFSET_NR],
      [BPF_JEQ_K, 0, toNext(3), abi.ioctl],
      [BPF_LD_W_ABS, 0, 0, OFFSET_ARG1_LOW],
      [BPF_JEQ_K, 1, 0, TIOCSTI],
      [BPF_JEQ_K, 0, toNext(6), TIOCLINUX],
      deny,
    );
  }
  program.push(allow);
  const bytes = Buffer.alloc(program.length * 8);
  program.forEach(([code, jt, jf, k], i) => {
    bytes.writeUInt16LE(code, i * 8);
    bytes.writeUInt8(jt, i * 8 + 2);
    bytes.writeUInt8(jf, i * 8 + 3);
    bytes.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return bytes;
}
