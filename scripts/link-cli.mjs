// After the build (npm install runs it as `prepare`): links this checkout's own CLI into
// node_modules/.bin, so `npx voicecall ...` here runs it at once instead of installing a copy
// of the package into npx's cache (and building it there) on every user's first use.
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "dist", "cli.js");
const link = join(root, "node_modules", ".bin", "voicecall");
if (!existsSync(cli)) throw new Error(`${cli} is missing: run the build first`);
chmodSync(cli, 0o755);
mkdirSync(dirname(link), { recursive: true });
if (existsSync(link) || isLink(link)) rmSync(link);
symlinkSync(relative(dirname(link), cli), link);

function isLink(path) {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
