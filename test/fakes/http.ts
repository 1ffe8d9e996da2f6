/** A carrier's REST API on loopback: JSON answers from `handle`, the request body read first. */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface JsonServer {
  /** http://127.0.0.1:<port> */
  origin: string;
  close(): Promise<void>;
}

export async function startJsonServer(handle: (req: IncomingMessage, body: string) => Promise<{ status: number; body: unknown }>): Promise<JsonServer> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      void handle(req, Buffer.concat(chunks).toString()).then(({ status, body }) => {
        // Bytes (a recording's file) go as they are; anything else as JSON.
        const raw = Buffer.isBuffer(body);
        res.writeHead(status, { "content-type": raw ? "audio/wav" : "application/json" });
        res.end(raw ? body : JSON.stringify(body));
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A request a JSON REST fake received: method, path (with its query) and the parsed body. */
export interface JsonRequest {
  method: string;
  path: string;
  body: Record<string, any>;
}

/** A carrier's REST API on loopback, with the requests its SDK made kept for the test to assert. */
export abstract class FakeRestApi<R extends { method: string; path: string }> {
  readonly requests: R[] = [];
  baseUrl = "";
  private server?: JsonServer;

  /** Serves this fake on a loopback port; `basePath` is what the SDK's base URL adds (Telnyx: /v2). */
  protected async listen(basePath = ""): Promise<this> {
    this.server = await startJsonServer((req, body) => this.handle(req, body));
    this.baseUrl = `${this.server.origin}${basePath}`;
    return this;
  }

  async close(): Promise<void> {
    await this.server?.close();
  }

  /** Requests the SDK made with `method` to a path matching `path`. */
  made(method: string, path: RegExp): R[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path));
  }

  protected abstract handle(req: IncomingMessage, text: string): Promise<{ status: number; body: unknown }>;
}
