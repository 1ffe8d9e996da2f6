/**
 * A throwaway PostgreSQL server on loopback for tests and the bench: Debian's
 * `postgresql` binaries, a cluster made with initdb in a temporary folder
 * (as user postgres when we are root), listening on 127.0.0.1 only, removed
 * on stop. It can be stopped and started again on the same port and data, as
 * a database restarting under a running service would.
 */
import { execFile } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Debian's versioned binaries folder, newest first. */
function binDir(): string | undefined {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], "bin") : undefined;
}

/** Why a local PostgreSQL cannot run here, or undefined when it can. */
export function postgresUnavailableReason(): string | undefined {
  if (!binDir()) return "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)";
  if (process.getuid?.() === 0) {
    try {
      uidOf("postgres");
    } catch {
      return "running as root, and there is no postgres user to run the server as";
    }
  }
  return undefined;
}

function uidOf(user: string): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user}`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

export class LocalPostgres {
  private running = false;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  /** initdb and start on `port` (127.0.0.1 only); `durable: false` turns fsync off (tests; never the bench). */
  static async start(options: { port: number; durable?: boolean }): Promise<LocalPostgres> {
    const bin = binDir();
    const reason = postgresUnavailableReason();
    if (!bin || reason) throw new Error(reason ?? "no PostgreSQL binaries");
    const dir = mkdtempSync(join(tmpdir(), "voicecall-pg-"));
    if (process.getuid?.() === 0) {
      const { uid, gid } = uidOf("postgres");
      chownSync(dir, uid, gid);
    }
    const pg = new LocalPostgres(dir, options.port, bin);
    await pg.exec("initdb", ["-D", join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
    const conf = [`port = ${options.port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, "max_connections = 100"];
    if (options.durable === false) conf.push("fsync = off", "synchronous_commit = off", "full_page_writes = off");
    appendFileSync(join(dir, "data", "postgresql.conf"), `${conf.join("\n")}\n`);
    await pg.startServer();
    return pg;
  }

  /** The address of database `db` (as the superuser, no password: trust on loopback). */
  url(db = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  /** A new empty database; its address. */
  async createDatabase(name: string): Promise<string> {
    await this.exec("psql", ["-h", "127.0.0.1", "-p", String(this.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", `CREATE DATABASE "${name}"`]);
    return this.url(name);
  }

  /** One SQL statement through psql; its rows as tab-separated lines. */
  async sql(db: string, statement: string): Promise<string[]> {
    const { stdout } = await this.exec("psql", ["-h", "127.0.0.1", "-p", String(this.port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtF", "\t", "-c", statement]);
    return stdout.split("\n").filter((l) => l !== "");
  }

  async startServer(): Promise<void> {
    await this.exec("pg_ctl", ["-D", join(this.dir, "data"), "-l", join(this.dir, "server.log"), "-w", "-t", "60", "start"]);
    this.running = true;
  }

  /** A fast shutdown: connections are cut, as a database restart does to its clients. */
  async stopServer(): Promise<void> {
    if (!this.running) return;
    await this.exec("pg_ctl", ["-D", join(this.dir, "data"), "-m", "fast", "-w", "-t", "60", "stop"]);
    this.running = false;
  }

  /** Stops the server and removes its data. */
  async stop(): Promise<void> {
    await this.stopServer().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A PostgreSQL binary, as user postgres when we are root. */
  private async exec(tool: string, args: string[]): Promise<{ stdout: string }> {
    const file = join(this.bin, tool);
    const asRoot = process.getuid?.() === 0;
    try {
      return await run(asRoot ? "runuser" : file, asRoot ? ["-u", "postgres", "--", file, ...args] : args, { cwd: this.dir, maxBuffer: 16 << 20 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${tool} failed: ${(e.stderr || e.message).trim().split("\n").slice(-3).join(" ")}`);
    }
  }
}
