/**
 * The standalone service: runtime + HTTP server on serve.bind:serve.port.
 * The gateway plugin's background service uses the same function.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { createRuntime, type RuntimeDeps, type VoiceCallRuntime } from "../runtime.js";
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
  close(): Promise<void>;
}

export async function startService(config: VoiceCallConfig, logger: Logger, deps: RuntimeDeps = {}): Promise<RunningService> {
  const runtime = await createRuntime(config, logger, deps);
  try {
    const { token, generated } = resolveControlToken(config.control.token, runtime.storeDir);
    const carriers = [...runtime.providers.values()].flatMap((p) => (p.ingress ? [p.ingress] : []));
    const ingress = new Ingress({ config, carriers, endpoints: runtime.endpoints, replay: ReplayGuard.open(runtime.storeDir, logger), logger });
    const server = createHttpServer({ methods: runtime, token, logger, ingress });
    const address = await listen(server, config.serve.port, config.serve.bind);
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const url = `http://${host}:${address.port}`;
    logger.info(
      { url, webhookPath: config.serve.path, ...(ingress.enabled ? { publicWebhook: runtime.endpoints.webhookBase(), streamPath: config.streaming.streamPath } : {}) },
      "voice-call service listening",
    );
    return {
      runtime,
      url,
      token,
      tokenGenerated: generated,
      async close() {
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
