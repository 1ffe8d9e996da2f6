import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { createLogger } from "../src/log.js";
import { AriClient, type AriEvent } from "../src/providers/asterisk/ari.js";
import { AsteriskProvider } from "../src/providers/asterisk/provider.js";
import { FakeSynthesizer, FakeTranscriber } from "../src/speech/fake.js";
import { CascadeVoices } from "../src/voice/cascade.js";
import { makeConfig, waitFor } from "./helpers.js";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** An ARI events endpoint that refuses the first `refusals` upgrades with 503, as Asterisk does while it starts. */
async function fakeAri(refusals: number): Promise<{ url: string; wss: WebSocketServer; upgrades: () => number }> {
  const wss = new WebSocketServer({ noServer: true });
  let upgrades = 0;
  // The REST the provider asks for right after connecting: no channels, no bridges.
  server = createServer((req, res) => (req.method === "GET" && /^\/ari\/(channels|bridges)$/.test(req.url ?? "") ? res.writeHead(200).end("[]") : res.writeHead(404).end()));
  server.on("upgrade", (req, socket, head) => {
    upgrades += 1;
    if (upgrades <= refusals) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, wss, upgrades: () => upgrades };
}

const client = (url: string) =>
  new AriClient({ url, username: "u", password: "p", app: "voicecall", logger: createLogger("silent"), backoffMs: 20, maxBackoffMs: 100 });

describe("ARI events client", () => {
  it("fails the first connect with the HTTP status it got", async () => {
    const { url } = await fakeAri(99);
    const ari = client(url);
    await expect(ari.connect()).rejects.toThrow(/HTTP 503/);
    ari.close();
  });

  it("keeps reconnecting through refusals after it was connected, and validates events", async () => {
    const { url, wss, upgrades } = await fakeAri(0);
    const ari = client(url);
    const events: AriEvent[] = [];
    const states: boolean[] = [];
    ari.onEvent((e) => events.push(e));
    ari.onConnection((s) => states.push(s.reconnected));
    await ari.connect();
    const first = await waitFor(() => [...wss.clients][0], "the server side");
    first.send(JSON.stringify({ type: "ChannelDtmfReceived", application: "voicecall", digit: "5", duration_ms: 100, channel: { id: "c1", name: "PJSIP/x", state: "Up" } }));
    first.send(JSON.stringify({ type: "ChannelDtmfReceived", application: "voicecall", digit: "5" }));
    first.send("not json");
    await waitFor(() => events.length === 1, "the valid event");
    expect(events[0]).toMatchObject({ type: "ChannelDtmfReceived", digit: "5" });

    // Asterisk restarts: the socket drops, and its first answers are 503.
    let refused = 0;
    server!.removeAllListeners("upgrade");
    server!.on("upgrade", (req, socket, head) => {
      if (refused < 3) {
        refused += 1;
        socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
    });
    first.terminate();
    await waitFor(() => states.includes(true), "a reconnect after three refusals", 5000);
    expect(refused).toBe(3);
    expect(ari.isConnected).toBe(true);
    expect(upgrades()).toBe(1);
    ari.close();
  });
});

describe("Asterisk carrier starting before Asterisk", () => {
  const provider = (url: string) => {
    const config = makeConfig({ provider: "asterisk", asterisk: { ari: { url, password: "p" } } });
    const logged: string[] = [];
    const logger = createLogger("info", { write: (line: string) => void logged.push(line) } as never);
    return { logged, ast: new AsteriskProvider({ config, logger, voice: new CascadeVoices(config, new FakeSynthesizer(), new FakeTranscriber()) }) };
  };

  it("starts while ARI is not up yet, says so, and connects once Asterisk answers", async () => {
    const { url, upgrades } = await fakeAri(3);
    const { ast, logged } = provider(url);
    await ast.start(() => undefined);
    expect(logged.join("")).toMatch(/Asterisk ARI is not reachable yet/);
    await waitFor(() => upgrades() >= 4 && ast.ari.isConnected, "the connection after three refusals", 10_000);
    await waitFor(() => logged.some((l) => l.includes("Asterisk ARI answers now")), "the note that it answers");
    await ast.stop();
  });

  it("fails the start when ARI refuses the credentials, naming them", async () => {
    const wss = new WebSocketServer({ noServer: true });
    server = createServer((_req, res) => res.writeHead(404).end());
    server.on("upgrade", (_req, socket) => socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"));
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const { ast } = provider(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await expect(ast.start(() => undefined)).rejects.toMatchObject({ code: "UNAVAILABLE", message: expect.stringMatching(/HTTP 401.*asterisk\.ari\.username\/password/) });
    wss.close();
  });
});
