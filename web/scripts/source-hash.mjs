#!/usr/bin/env node
// The content hash of the dashboard's sources, written into the built bundle as SOURCE_HASH, so
// that a test (test/test_web.py, in Python: no Node.js needed) can tell that the bundle shipped
// in rover_ws_bridge/dashboard/ was built from the sources as they are. Git does not keep file
// times, hence a content hash.
//
// The hash (test/test_web.py computes the same): SHA-256 over the files below, sorted by their
// path relative to web/ (POSIX separators, UTF-8 byte order); for each file the bytes
// `<path>\n<size>\n<content>\n`, where CRLF in the content is read as LF and size is the
// length of that content.
//
//   node scripts/source-hash.mjs           print the hash
//   node scripts/source-hash.mjs --write   write it to ../rover_ws_bridge/dashboard/SOURCE_HASH
//   node scripts/source-hash.mjs --check   exit 1 if SOURCE_HASH differs
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync, existsSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = fileURLToPath(new URL("..", import.meta.url));
export const HASHED_FILES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"];
export const HASHED_DIRS = ["src"];
const OUTPUT = join(WEB, "..", "rover_ws_bridge", "dashboard", "SOURCE_HASH");

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

export function sourceHash() {
  const files = [
    ...HASHED_FILES.map((f) => join(WEB, f)).filter(existsSync),
    ...HASHED_DIRS.flatMap((d) => walk(join(WEB, d))),
  ].map((p) => relative(WEB, p).split(sep).join("/"));
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const hash = createHash("sha256");
  for (const path of files) {
    const content = Buffer.from(readFileSync(join(WEB, path)).toString("latin1").replaceAll("\r\n", "\n"), "latin1");
    hash.update(`${path}\n${content.length}\n`);
    hash.update(content);
    hash.update("\n");
  }
  return hash.digest("hex");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const digest = sourceHash();
  if (process.argv.includes("--write")) {
    writeFileSync(OUTPUT, `${digest}\n`);
    console.log(`SOURCE_HASH ${digest} -> ${relative(process.cwd(), OUTPUT)}`);
  } else if (process.argv.includes("--check")) {
    const shipped = existsSync(OUTPUT) ? readFileSync(OUTPUT, "utf8").trim() : "(none)";
    if (shipped !== digest) {
      console.error(`the dashboard bundle is stale: sources ${digest}, bundle ${shipped}; run: cd web && npm ci && npm run build`);
      process.exit(1);
    }
    console.log(`bundle up to date (${digest})`);
  } else {
    console.log(digest);
  }
}
