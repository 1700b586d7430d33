import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

// The container's own limits and use, read from its cgroup (v2 unified, or v1 where that is what
// the host has). Node's os module reports the host, not the container.
export interface CgroupReader {
  version: 1 | 2 | undefined;
  /** CPU limit in cores, or undefined when unlimited. */
  cpuLimitCores(): number | undefined;
  /** Total CPU time used by the cgroup, in seconds. */
  cpuUsageSeconds(): number | undefined;
  /** Memory limit in bytes, or undefined when unlimited. */
  memoryLimitBytes(): number | undefined;
  memoryUsageBytes(): number | undefined;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const UNLIMITED_V1 = 2 ** 62; // v1 reports "no limit" as a huge page-aligned number

export function cgroupReader(root = '/sys/fs/cgroup'): CgroupReader {
  if (read(join(root, 'cgroup.controllers')) !== undefined) {
    return {
      version: 2,
      cpuLimitCores() {
        const [quota, period] = (read(join(root, 'cpu.max')) ?? 'max').split(/\s+/);
        if (!quota || quota === 'max') return undefined;
        return Number(quota) / Number(period ?? 100000);
      },
      cpuUsageSeconds() {
        const line = read(join(root, 'cpu.stat'))
          ?.split('\n')
          .find((l) => l.startsWith('usage_usec '));
        return line ? Number(line.split(' ')[1]) / 1e6 : undefined;
      },
      memoryLimitBytes() {
        const v = read(join(root, 'memory.max'));
        return v === undefined || v === 'max' ? undefined : Number(v);
      },
      memoryUsageBytes() {
        const v = read(join(root, 'memory.current'));
        return v === undefined ? undefined : Number(v);
      },
    };
  }
  if (read(join(root, 'cpu', 'cpu.cfs_quota_us')) !== undefined || read(join(root, 'memory', 'memory.limit_in_bytes')) !== undefined) {
    return {
      version: 1,
      cpuLimitCores() {
        const quota = Number(read(join(root, 'cpu', 'cpu.cfs_quota_us')) ?? -1);
        const period = Number(read(join(root, 'cpu', 'cpu.cfs_period_us')) ?? 100000);
        return quota > 0 ? quota / period : undefined;
      },
      cpuUsageSeconds() {
        const v = read(join(root, 'cpuacct', 'cpuacct.usage')) ?? read(join(root, 'cpu,cpuacct', 'cpuacct.usage'));
        return v === undefined ? undefined : Number(v) / 1e9;
      },
      memoryLimitBytes() {
        const v = Number(read(join(root, 'memory', 'memory.limit_in_bytes')) ?? NaN);
        return Number.isFinite(v) && v < UNLIMITED_V1 ? v : undefined;
      },
      memoryUsageBytes() {
        const v = read(join(root, 'memory', 'memory.usage_in_bytes'));
        return v === undefined ? undefined : Number(v);
      },
    };
  }
  return {
    version: undefined,
    cpuLimitCores: () => undefined,
    cpuUsageSeconds: () => undefined,
    memoryLimitBytes: () => undefined,
    memoryUsageBytes: () => undefined,
  };
}

/** Cores this process may use: the cgroup's CPU limit (rounded up) capped by the host's cores. */
export function usableCores(reader: CgroupReader = cgroupReader()): number {
  const host = availableParallelism();
  const limit = reader.cpuLimitCores();
  return Math.max(1, limit === undefined ? host : Math.min(host, Math.ceil(limit)));
}
