/**
 * The bridge's permission globs (`hello.permissions`), matched as Python's
 * `fnmatch.fnmatchcase` does on the server: `*` matches any run of characters, `/` included;
 * `?` one character; `[seq]` one character of seq, `[!seq]` one not in it; everything else
 * literally (case-sensitive).
 */

const cache = new Map<string, RegExp>();
const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const CACHE_LIMIT = 256;

function translate(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") {
      out += "[\\s\\S]*";
    } else if (c === "?") {
      out += "[\\s\\S]";
    } else if (c === "[") {
      // The set ends at the first "]" after an optional "!" and an optional literal "]".
      let j = i + 1;
      if (pattern[j] === "!") j++;
      if (pattern[j] === "]") j++;
      while (j < pattern.length && pattern[j] !== "]") j++;
      if (j >= pattern.length) {
        out += "\\["; // no closing bracket: a literal "[" (as fnmatch)
        continue;
      }
      let body = pattern.slice(i + 1, j);
      let negate = false;
      if (body.startsWith("!")) {
        negate = true;
        body = body.slice(1);
      }
      const escaped = body.replace(/[\\\]^]/g, "\\$&");
      out += escaped === "" ? (negate ? "[\\s\\S]" : "(?!)") : `[${negate ? "^" : ""}${escaped}]`;
      i = j;
    } else {
      out += escapeRegex(c);
    }
  }
  return `^${out}$`;
}

/** Whether `name` matches the fnmatch-style `pattern`. */
export function globMatch(pattern: string, name: string): boolean {
  let regex = cache.get(pattern);
  if (regex === undefined) {
    try {
      regex = new RegExp(translate(pattern), "u");
    } catch {
      // A set JavaScript refuses (e.g. a reversed range "[z-a]"): only the literal text matches.
      regex = new RegExp(`^${escapeRegex(pattern)}$`, "u");
    }
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(pattern, regex);
  }
  return regex.test(name);
}

/** Whether `name` matches any of `patterns`. */
export function globAny(patterns: readonly string[] | undefined, name: string): boolean {
  return patterns !== undefined && patterns.some((p) => globMatch(p, name));
}
