/** Numeric fields of a decoded message, by path ("twist.twist.linear.x", "position[2]"). */

// Long numeric arrays (covariances, point data) would flood the picker; short ones (joint
// positions, a 3-vector) are worth plotting.
const MAX_ARRAY = 16;
const SKIP_KEY = /covariance/i;

export function numericPaths(value: unknown, prefix = "", out: [string, number][] = [], depth = 0): [string, number][] {
  if (depth > 8) return out;
  if (typeof value === "number") {
    out.push([prefix, value]);
  } else if (Array.isArray(value)) {
    if (value.length <= MAX_ARRAY) value.forEach((v, i) => numericPaths(v, `${prefix}[${i}]`, out, depth + 1));
  } else if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (SKIP_KEY.test(key)) continue;
      numericPaths(v, prefix ? `${prefix}.${key}` : key, out, depth + 1);
    }
  }
  return out;
}

/** A fast getter for one path (compiled once, used for every message). */
export function accessor(path: string): (value: unknown) => number | undefined {
  const keys: (string | number)[] = [];
  for (const part of path.split(".")) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (match === null) {
      keys.push(part);
      continue;
    }
    if (match[1]) keys.push(match[1]);
    for (const index of match[2].matchAll(/\[(\d+)\]/g)) keys.push(Number(index[1]));
  }
  return (value: unknown) => {
    let v = value as Record<string | number, unknown> | undefined;
    for (const key of keys) {
      if (v === null || typeof v !== "object") return undefined;
      v = v[key] as Record<string | number, unknown> | undefined;
    }
    return typeof v === "number" ? v : undefined;
  };
}
