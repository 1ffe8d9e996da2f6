/**
 * The standalone service: runtime + HTTP server on serve.bind:serve.port.
 * The gateway plugin's background service uses the same function.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { createRuntime, type RuntimeDeps, type VoiceCallRuntime } from "../runtime.js";
import { PublicEndpoints } from "../providers/public-url.js";
import { Exposure, exposurePlan, localHost, type ExposureOptions } from "./exposure.js";
import { createHttpServer, listen } from "./http.js";
import { Ingress } from "./ingress.js";
import { ReplayGuard } from "./replay.js";
import { resolveControlToken } from "./token.js";

export interface RunningService {
  runtime: VoiceCallRuntime;
  url: string;
  token: string;
  /** True when the token was generated on this start (print it once). */
  tokenGenerated: boolean;
  /** The tunnel or Tailscale route opened for carriers, when the config asks for one. */
  exposure?: Exposure;
  close(): Promise<void>;
}

export interface ServiceDeps extends RuntimeDeps {
  /** How a tunnel is opened (tests: a stand-in tailscale CLI, ngrok's forward). */
  exposure?: Pick<ExposureOptions, "tailscaleBin" | "ngrokForward">;
}

export async function startService(config: VoiceCallConfig, logger: Logger, deps: ServiceDeps = {}): Promise<RunningService> {
  const { exposure: exposureDeps, ...runtimeDeps } = deps;
  const plan = exposurePlan(config);
  const endpoints = runtimeDeps.endpoints ?? new PublicEndpoints(config);
  if (plan) endpoints.pending("the service is starting");
  const runtime = await createRuntime(config, logger, { ...runtimeDeps, endpoints });
  try {
    const { token, generated } = resolveControlToken(config.control.token, runtime.storeDir);
    const carriers = [...runtime.providers.values()].flatMap((p) => (p.ingress ? [p.ingress] : []));
    // On a shared store a webhook for a call another instance holds goes to it (never asked for a call held here).
    const { forwarder, manager } = runtime;
    const ownerOf = forwarder
      ? (ids: string[]) => (ids.some((id) => manager.getCall(id) !== undefined) ? Promise.resolve(undefined) : forwarder.ownerOfProviderCall(ids))
      : undefined;
    const ingress = new Ingress({ config, carriers, endpoints: runtime.endpoints, replay: ReplayGuard.open(runtime.storeDir, logger), logger, ...(ownerOf ? { ownerOf } : {}) });
    const server = createHttpServer({ methods: runtime, token, logger, ingress });
    const address = await listen(server, config.serve.port, config.serve.bind);
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const url = `http://${host}:${address.port}`;
    // Where the other instances of a cluster reach this one (on this machine; cluster.address across machines).
    const reachable = localHost(address.address);
    runtime.advertise(`http://${reachable.includes(":") ? `[${reachable}]` : reachable}:${address.port}`, token);
    logger.info(
      { url, webhookPath: config.serve.path, ...(ingress.enabled ? { publicWebhook: runtime.endpoints.webhookBase(), streamPath: config.streaming.streamPath } : {}) },
      "voice-call service listening",
    );
    const exposure = plan
      ? new Exposure({
          plan,
          local: { host: localHost(address.address), port: address.port },
          webhookPath: config.serve.path,
          streamPath: config.streaming.streamPath,
          endpoints,
          logger,
          ...exposureDeps,
        })
      : undefined;
    exposure?.start();
    return {
      runtime,
      url,
      token,
      tokenGenerated: generated,
      exposure,
      async close() {
        await exposure?.close();
        ingress.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await runtime.stop();
      },
    };
  } catch (err) {
    await runtime.stop();
    throw err;
  }
}
